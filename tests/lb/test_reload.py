"""`runnerpool lb` re-reads its functions file on SIGHUP, without disturbing calls in flight."""

from __future__ import annotations

import asyncio
import signal

import httpx

from tests.lb.conftest import FUNCTIONS_TOML, Processes, eventually, wait_active

#: The functions file after an edit: `hello` renamed `greet`.
EDITED = FUNCTIONS_TOML.replace('id = "hello"', 'id = "greet"')
#: An edit with a mistake on line 28.
BROKEN = EDITED.replace('image = "fail"', 'image = "fail"\nmemory = "lots"')


class TestSighup:
    async def test_sighup_reloads_a_valid_file_and_keeps_the_old_one_for_a_broken_one(
        self, processes: Processes
    ) -> None:
        """SIGHUP puts an edited file in force; a broken one is logged with its line and ignored.

        A call in flight during both reloads finishes normally.
        """
        runner = processes.runner()
        config = processes.config()
        lb = processes.start(
            ["lb", "--port", "0", "--config", str(config), "--runner-addresses", runner.address],
            "load balancer listening on ",
        )
        async with httpx.AsyncClient(base_url=lb.address, timeout=30) as client:
            assert (await client.post("/invoke/hello")).status_code == 200
            # Long enough to outlast both reloads by far, on a loaded machine too.
            in_flight = asyncio.create_task(client.post("/invoke/slow", content=b"5"))
            await wait_active([runner.address], 1)

            config.write_text(EDITED)
            lb.signal(signal.SIGHUP)

            async def reloaded() -> bool:
                return (await client.post("/invoke/greet")).status_code == 200

            await eventually(reloaded, what="the edited file in force")
            assert (await client.post("/invoke/hello")).status_code == 404
            assert "Functions reloaded from " in lb.stderr()

            config.write_text(BROKEN)
            lb.signal(signal.SIGHUP)

            async def refused() -> bool:
                return "Functions not reloaded" in lb.stderr()

            await eventually(refused, what="the broken file's error in the log")
            assert f"{config}:28: functions[3].memory: must be an integer from 1 to 8192" in (
                lb.stderr()
            )
            assert (await client.post("/invoke/greet")).status_code == 200
            assert (await client.post("/invoke/hello")).status_code == 404

            assert not in_flight.done()
            response = await in_flight
            assert (response.status_code, response.text) == (200, "slept 5s")
        lb.signal(signal.SIGTERM)
        assert await lb.wait() == 0
