"""The ``"fifo"`` back-off mode in a real load balancer: a full queue's 503 comes at once."""

from __future__ import annotations

import asyncio
import json

import httpx

from tests.lb.conftest import BUSY_BODY, FAST_PLACER, Processes, wait_active


async def test_a_full_fifo_queue_answers_503_with_retry_after_at_once(
    processes: Processes,
) -> None:
    """One runner of one call, a queue of one: the third call's 503 comes before the first ends."""
    runner = processes.runner("--max-calls", "1")
    placer = {**FAST_PLACER, "placer_timeout": "30s", "backoff": "fifo", "queue_limit": 1}
    path = processes.config(json.dumps(placer), "fifo.json")
    lb = processes.lb([runner.address], "--placer-config", str(path), placer_config=None)
    async with httpx.AsyncClient(base_url=lb.address, timeout=60) as client:
        first = asyncio.create_task(client.post("/invoke/slow", content=b"5"))
        await wait_active([runner.address], 1)
        waiting = asyncio.create_task(client.post("/invoke/slow", content=b"0"))
        await asyncio.sleep(1.0)  # time to find the runner busy and take the queue's place
        refused = await client.post("/invoke/slow", content=b"0")
        assert not first.done()
        assert refused.status_code == 503
        assert refused.content == BUSY_BODY
        assert refused.headers["retry-after"] == "15"
        assert (await first).status_code == 200
        assert (await waiting).status_code == 200
