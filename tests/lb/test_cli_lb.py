"""`runnerpool lb` and `runnerpool dev` on the command line: help, Fn's variables, bad input."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from runnerpool.cli import main
from tests.fdk.conftest import wheelhouse
from tests.lb.conftest import FUNCTIONS_TOML, Processes, listening

BAD_MEMORY = """\
[[apps]]
name = "tests"

[[functions]]
id = "ok"
name = "ok"
app = "tests"
image = "echo"

[[functions]]
id = "greedy"
name = "greedy"
app = "tests"
image = "echo"
memory = "big"
"""


def cmdline(pid: int) -> bytes:
    """Return a process's command line, its arguments separated by NUL bytes."""
    with open(f"/proc/{pid}/cmdline", "rb") as file:
        return file.read()


def children(pid: int) -> list[int]:
    """Return the ids of the live processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            # Fields after the command name, which is in parentheses: state, ppid, ...
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """Return whether a runnerpool process with this id exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and b"runnerpool" in command


class TestHelp:
    def test_help_names_every_fn_variable(self) -> None:
        """`runnerpool lb --help` names each of Fn's environment variables it reads."""
        result = CliRunner().invoke(main, ["lb", "--help"])
        assert result.exit_code == 0
        text = " ".join(result.output.split())
        for variable in (
            "FN_RUNNER_ADDRESSES",
            "FN_PLACER",
            "FN_PORT",
            "FN_MAX_REQUEST_SIZE",
            "FN_MAX_RESPONSE_SIZE",
        ):
            assert f"env {variable}" in text, variable


class TestBadInput:
    def test_malformed_config_names_line_and_field(self, tmp_path: Path) -> None:
        """A function with `memory = "big"` exits 2, naming the file, line and field."""
        config = tmp_path / "fns.toml"
        config.write_text(BAD_MEMORY)
        result = CliRunner().invoke(
            main, ["lb", "--config", str(config), "--runner-addresses", "127.0.0.1:1"]
        )
        assert result.exit_code == 2
        assert (
            f"{config}:15: functions[1].memory: must be an integer from 1 to 8192, got 'big'"
            in (result.output)
        )

    def test_missing_config_exits_2(self, tmp_path: Path) -> None:
        """A config file that does not exist exits 2 and says it cannot be read."""
        missing = tmp_path / "missing.toml"
        result = CliRunner().invoke(
            main, ["lb", "--config", str(missing), "--runner-addresses", "127.0.0.1:1"]
        )
        assert result.exit_code == 2
        assert f"{missing}: cannot read" in result.output

    @pytest.mark.parametrize(
        ("env", "message"),
        [
            (
                {"FN_PLACER": "bogus"},
                "Invalid value for '--placer': 'bogus' is not one of 'ch', 'ch-fn', 'naive'",
            ),
            (
                {"FN_RUNNER_ADDRESSES": "no-port"},
                "Invalid value for '--runner-addresses': 'no-port' is not host:port",
            ),
            ({"FN_PORT": "70000"}, "Invalid value for '--port': 70000 is not in the range"),
            (
                {"FN_MAX_REQUEST_SIZE": "-1"},
                "Invalid value for '--max-request-size': -1 is not in the range x>=0",
            ),
        ],
    )
    def test_bad_environment_exits_2(
        self, tmp_path: Path, env: dict[str, str], message: str
    ) -> None:
        """A bad value in one of Fn's variables exits 2 with a clear message."""
        config = tmp_path / "fns.toml"
        config.write_text(FUNCTIONS_TOML)
        env = {"FN_RUNNER_ADDRESSES": "127.0.0.1:1", **env}
        result = CliRunner().invoke(main, ["lb", "--config", str(config)], env=env)
        assert result.exit_code == 2
        assert message in result.output


class TestEnvironment:
    async def test_fn_variables_replace_flags(self, processes: Processes) -> None:
        """FN_RUNNER_ADDRESSES, FN_PLACER and FN_PORT configure a working load balancer."""
        runner = processes.runner()
        config = processes.config()
        lb = processes.start(
            ["lb", "--config", str(config)],
            "load balancer listening on ",
            env={"FN_RUNNER_ADDRESSES": runner.address, "FN_PLACER": "naive", "FN_PORT": "0"},
        )
        async with httpx.AsyncClient(base_url=lb.address, timeout=10) as client:
            response = await client.post("/invoke/echo", content=b"from env")
        assert (response.status_code, response.content) == (200, b"from env")
        assert ", 1 runner(s), placer naive" in lb.stderr()
        lb.signal(signal.SIGTERM)
        assert await lb.wait() == 0


class TestDev:
    async def test_dev_serves_the_printed_curl_and_stops_everything(
        self, processes: Processes, tmp_path: Path
    ) -> None:
        """`runnerpool dev` answers its own curl line from an FDK function; SIGINT stops all.

        No process is left behind: no runner, no function process.
        """
        env = {
            "RUNNERPOOL_WHEELHOUSE": str(wheelhouse()),
            "RUNNERPOOL_STATE_DIR": str(tmp_path / "state"),
        }
        dev = processes.start(["dev", "--port", "0"], "runnerpool dev: ", ready_lines=7, env=env)
        runner_ids = children(dev.popen.pid)
        try:
            banner = dev.address
            addresses = re.search(r"^\s*runners\s+(.+)$", banner, re.MULTILINE)
            curl = re.search(r"^\s*(curl .+)$", banner, re.MULTILINE)
            assert addresses is not None
            assert curl is not None
            runners = addresses[1].split(", ")
            assert len(runners) == len(runner_ids) == 3
            assert all(listening(address) for address in runners)
            # The printed request, as curl sends it: -d is a form-encoded POST.
            args = shlex.split(curl[1])
            assert args[:3] == ["curl", "-X", "POST"]
            assert args[4] == "-d"
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(
                    args[3],
                    content=args[5].encode(),
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
            assert response.status_code == 200
            assert response.content == b'{"message": "Hello, Ada!"}'
            # The greeting came from a real FDK process, a child of one of the runners.
            assert (response.headers.get("fn-fdk-version") or "").startswith("fdk-python/")
            functions = [
                pid
                for runner in runner_ids
                for pid in children(runner)
                if b"_launch.py" in cmdline(pid)
            ]
            assert len(functions) == 1
            dev.signal(signal.SIGINT)
            assert await dev.wait() == 0
            assert dev.popen.stdout is not None
            assert dev.popen.stdout.read() == "runnerpool dev: stopped.\n"
            assert not [pid for pid in runner_ids + functions if alive(pid)]
            assert not [address for address in runners if listening(address)]
            assert not listening(args[3].removeprefix("http://").split("/")[0])
        finally:
            # If `dev` died early, its runners (in their own sessions) would outlive it.
            for pid in runner_ids:
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)
