"""Logs that help, end to end: every line JSON in JSON mode, and the access log's fields.

Real runner and load balancer processes, with a failing detached call whose client left (once
"Task exception was never retrieved") and a Python warning raised by a function.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from runnerpool._dev import ready_address
from tests.lb.conftest import (
    FAST_PLACER,
    FUNCTIONS_TOML,
    PLACER_TIMEOUT,
    Process,
    Processes,
    eventually,
    wait_active,
)
from tests.lb.test_cli_lb import alive, children

#: Functions for the runner: the examples, and one that raises a Python warning.
FUNCTIONS_MODULE = """\
import warnings

from runnerpool.examples import FUNCTIONS as EXAMPLES
from runnerpool.runner import FunctionResponse


async def warn(request):
    warnings.warn("this function is deprecated", UserWarning, stacklevel=1)
    return FunctionResponse(b"warned")


FUNCTIONS = {**EXAMPLES, "warn": warn}
"""

WARN_FUNCTION = """
[[functions]]
id = "warn"
name = "warn"
app = "tests"
image = "warn"
"""

DETACHED = {"Fn-Invoke-Type": "detached"}


def start_json(
    processes: Processes, args: list[str], env: dict[str, str] | None = None
) -> tuple[Process, str]:
    """Start ``runnerpool ARGS`` in JSON mode; return it and the address of its ready line."""
    # The ready line is a JSON object: its first character is the prefix to wait for.
    process = processes.start([*args, "--log-format", "json"], "{", env=env)
    ready = json.loads("{" + process.address)
    assert ready["message"].endswith(f" listening on {ready['address']}")
    address: str = ready["address"]
    return process, address


def json_lines(text: str) -> list[dict[str, Any]]:
    """Parse each line of ``text`` as a JSON object; fail on a line that is not one."""
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            pytest.fail(f"not JSON: {line!r}")
        assert isinstance(entry, dict), line
        entries.append(entry)
    return entries


def access_lines(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The access log's entries among a load balancer's log entries."""
    return [entry for entry in entries if entry["logger"] == "runnerpool.access"]


class TestJsonMode:
    async def test_every_line_is_json_and_the_access_log_tells_each_call(
        self, processes: Processes, tmp_path: Path
    ) -> None:
        """In JSON mode every line a runner and a load balancer write is a JSON object.

        Each call has an access line with its method, path, status, duration, call id,
        function id, runner and attempts; the detached call that failed after its client
        left is one warning line with its call id, never "Task exception was never retrieved";
        the function's warning is a JSON line in the runner's log.
        """
        (tmp_path / "jsonlog_functions.py").write_text(FUNCTIONS_MODULE)
        functions = ["--functions", "jsonlog_functions:FUNCTIONS"]
        runner_process, runner = start_json(
            processes,
            ["runner", "--port", "0", "--max-calls", "1", *functions],
            env={"PYTHONPATH": str(tmp_path)},
        )
        config = processes.config(FUNCTIONS_TOML + WARN_FUNCTION)
        placer = processes.config(json.dumps(FAST_PLACER), "placer.json")
        options = ["--config", str(config), "--placer-config", str(placer)]
        lb, url = start_json(
            processes, ["lb", "--port", "0", "--runner-addresses", runner, *options]
        )
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            ok = await client.post("/invoke/echo", content=b"hi")
            warned = await client.post("/invoke/warn")
            failed = await client.post("/invoke/fail", content=b"x")
            missing = await client.post("/invoke/nope")
            slow = asyncio.create_task(client.post("/invoke/slow", content=b"5"))
            await wait_active([runner], 1)
            busy = await client.post("/invoke/echo", content=b"x")
            with pytest.raises(httpx.ReadTimeout):
                await client.post("/invoke/echo", content=b"x", headers=DETACHED, timeout=0.2)
            assert (await slow).status_code == 200
            detached = await client.post("/invoke/echo", content=b"x", headers=DETACHED)
        statuses = [r.status_code for r in (ok, warned, failed, missing, busy, detached)]
        assert statuses == [200, 200, 502, 404, 503, 202]

        async def left_logged() -> bool:
            return "failed after its client left" in lb.stderr()

        await eventually(left_logged, within=10, what="the detached failure logged")
        for process in (lb, runner_process):
            process.signal(signal.SIGTERM)
            assert await process.wait(30) == 0

        lb_entries = json_lines(lb.stderr())
        runner_entries = json_lines(runner_process.stderr())
        for process in (lb, runner_process):
            assert process.popen.stdout is not None
            json_lines(process.popen.stdout.read())  # after the ready line: JSON, if anything
            assert "never retrieved" not in process.stderr()

        [left_warning] = [e for e in lb_entries if "after its client left" in e["message"]]
        assert left_warning["level"] == "warning"
        assert "ServerBusyError" in left_warning["message"]
        [warning] = [e for e in runner_entries if e["logger"] == "py.warnings"]
        assert "UserWarning: this function is deprecated" in warning["message"]

        access = access_lines(lb_entries)
        by_status = {entry["status"]: entry for entry in access}
        assert sorted(entry["status"] for entry in access) == [
            200,
            200,
            200,
            202,
            404,
            444,
            502,
            503,
        ]
        for entry in access:
            assert entry["level"] == "info"
            assert entry["method"] == "POST"
            assert entry["path"] == f"/invoke/{entry['fn_id']}"
            assert entry["duration_ms"] > 0
            assert re.fullmatch(r"[0-9A-Z]{26}", entry["call_id"])
        ok_line = next(e for e in access if e["call_id"] == ok.headers["fn-call-id"])
        assert (ok_line["status"], ok_line["fn_id"]) == (200, "echo")
        assert (ok_line["runner_addr"], ok_line["attempts"]) == (runner, 1)
        assert ok_line["message"] == (
            f"POST /invoke/echo 200 {ok_line['duration_ms']:.1f} ms call_id={ok_line['call_id']}"
            f" fn_id=echo runner_addr={runner} attempts=1"
        )
        for response, fn_id in ((warned, "warn"), (failed, "fail"), (detached, "echo")):
            line = next(e for e in access if e["call_id"] == response.headers["fn-call-id"])
            assert (line["fn_id"], line["runner_addr"], line["attempts"]) == (fn_id, runner, 1)
        assert by_status[502]["call_id"] == failed.headers["fn-call-id"]
        assert by_status[202]["call_id"] == detached.headers["fn-call-id"]
        # Not found: no runner tried. Every runner busy: tried, none took it, for the
        # placer timeout at least.
        assert by_status[404]["call_id"] == missing.headers["fn-call-id"]
        assert by_status[404]["attempts"] == 0
        assert "runner_addr" not in by_status[404]
        assert by_status[503]["call_id"] == busy.headers["fn-call-id"]
        assert by_status[503]["attempts"] >= 1
        assert "runner_addr" not in by_status[503]
        assert by_status[503]["duration_ms"] >= PLACER_TIMEOUT * 1000
        # The client that left: 444 (nginx's "client closed"), and the same call id as the
        # warning of its placement's failure.
        assert by_status[444]["call_id"] == left_warning["call_id"]
        assert (by_status[444]["fn_id"], left_warning["fn_id"]) == ("echo", "echo")
        assert "runner_addr" not in by_status[444]


class TestAccessLogSwitch:
    async def test_on_by_default_off_with_no_access_log(self, processes: Processes) -> None:
        """A text-mode LB logs one readable access line per call, and none for /health.

        None at all when turned off by --no-access-log, or by FN_ACCESS_LOG=false.
        """
        runner = processes.runner()
        with_log = processes.lb([runner.address], log_level="info")
        without = processes.lb([runner.address], "--no-access-log", log_level="info")
        config = processes.config()
        without_by_env = processes.start(
            ["lb", "--port", "0", "--config", str(config), "--runner-addresses", runner.address],
            "load balancer listening on ",
            env={"FN_ACCESS_LOG": "false"},
        )
        async with httpx.AsyncClient(timeout=10) as client:
            first = await client.post(f"{with_log.address}/invoke/echo", content=b"a")
            # Not a call: no access line.
            assert (await client.get(f"{with_log.address}/health")).status_code == 200
            for process in (without, without_by_env):
                other = await client.post(f"{process.address}/invoke/echo", content=b"b")
                assert other.status_code == 200
        assert first.status_code == 200
        for process in (with_log, without, without_by_env):
            process.signal(signal.SIGTERM)
            assert await process.wait(30) == 0
        lines = [line for line in with_log.stderr().splitlines() if "runnerpool.access" in line]
        call_id = first.headers["fn-call-id"]
        [line] = lines
        assert re.search(
            rf" INFO runnerpool\.access: POST /invoke/echo 200 \d+\.\d ms call_id={call_id} "
            rf"fn_id=echo runner_addr={re.escape(runner.address)} attempts=1$",
            line,
        ), line
        for process in (without, without_by_env):
            assert "runnerpool.access" not in process.stderr()
            assert "Load balancer on" in process.stderr()  # it logs, just not the calls

    async def test_a_trigger_call_has_its_access_line(self, processes: Processes) -> None:
        """A call through an HTTP trigger is logged too, with the function the trigger names."""
        runner = processes.runner()
        trigger = '\n[[triggers]]\nname = "t"\napp = "tests"\nfunction = "echo"\nsource = "/e"\n'
        config = processes.config(FUNCTIONS_TOML + trigger, "triggers.toml")
        lb = processes.lb([runner.address], placer_config=None, log_level="info", config=config)
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.post(f"{lb.address}/t/tests/e", content=b"via trigger")
        assert response.status_code == 200, response.text
        lb.signal(signal.SIGTERM)
        assert await lb.wait(30) == 0
        [line] = [line for line in lb.stderr().splitlines() if "runnerpool.access" in line]
        call_id = response.headers["fn-call-id"]
        assert re.search(
            rf" POST /t/tests/e 200 \d+\.\d ms call_id={call_id} "
            rf"fn_id=echo runner_addr={re.escape(runner.address)} attempts=1$",
            line,
        ), line


class TestDev:
    async def test_dev_in_json_mode(self, processes: Processes) -> None:
        """`runnerpool --log-format json dev`: its runners, which share its stderr, log JSON.

        The call's access line is there too.
        """
        dev = processes.start(
            ["--log-format", "json", "dev", "--in-process", "--port", "0"],
            "runnerpool dev: ",
            ready_lines=7,
        )
        runner_ids = children(dev.popen.pid)
        try:
            url = re.search(r"load balancer\s+(http://\S+)", dev.address)
            assert url is not None
            async with httpx.AsyncClient(base_url=url[1], timeout=10) as client:
                response = await client.post("/invoke/hello", content=b'{"name": "Ada"}')
            assert response.status_code == 200
            dev.signal(signal.SIGINT)
            assert await dev.wait(30) == 0
        finally:
            # If `dev` died early, its runners (in their own sessions) would outlive it.
            for pid in runner_ids:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
        entries = json_lines(dev.stderr())
        [access] = access_lines(entries)
        assert (access["call_id"], access["status"]) == (response.headers["fn-call-id"], 200)
        assert access["runner_addr"] in dev.address  # one of the runners the banner lists


class TestReadyLine:
    @pytest.mark.parametrize(
        ("line", "address"),
        [
            ("runner listening on 127.0.0.1:9190\n", "127.0.0.1:9190"),
            (
                '{"level": "info", "message": "runner listening on 127.0.0.1:1", '
                '"address": "127.0.0.1:1"}\n',
                "127.0.0.1:1",
            ),
            ("Traceback (most recent call last):\n", None),
            ('{"message": "something else"}\n', None),
            ("{not json\n", None),
            ("[1]\n", None),
            ("", None),
        ],
    )
    def test_ready_address(self, line: str, address: str | None) -> None:
        """`dev` reads a runner's address from its ready line, in text or in JSON."""
        assert ready_address(line) == address
