"""The runnerpool command line: help, bad input, and a real runner process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from runnerpool.cli import main

RUNNERPOOL = [sys.executable, "-m", "runnerpool"]


class TestHelp:
    def test_group_help(self) -> None:
        """`runnerpool --help` lists the commands."""
        result = CliRunner().invoke(main, ["--help"])
        assert result.exit_code == 0
        assert "runner" in result.output
        assert "status" in result.output

    def test_runner_help_names_fn_variables(self) -> None:
        """`runnerpool runner --help` explains each option with Fn's environment variable."""
        result = CliRunner().invoke(main, ["runner", "--help"])
        assert result.exit_code == 0
        for variable in (
            "FN_GRPC_PORT",
            "FN_MAX_TOTAL_MEMORY_BYTES",
            "FN_MAX_REQUEST_SIZE",
            "FN_MAX_RESPONSE_SIZE",
        ):
            assert variable in result.output


class TestBadInput:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["runner", "--port", "70000"], "70000"),
            (["runner", "--max-calls", "0"], "--max-calls"),
            (["runner", "--functions", "no.such.module:X"], "cannot load"),
            (["runner", "--functions", "runnerpool.examples:echo"], "not a non-empty mapping"),
            (["runner", "--frobnicate"], "No such option"),
            (["status", "no-port"], "not host:port"),
        ],
    )
    def test_usage_errors_exit_2(self, args: list[str], message: str) -> None:
        """Bad options and arguments are refused with exit code 2 and a clear message."""
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2
        assert message in result.output

    def test_port_in_use(self) -> None:
        """A port already taken is a clear error, exit code 1."""
        with subprocess.Popen(
            [*RUNNERPOOL, "runner", "--port", "0"], stdout=subprocess.PIPE, text=True
        ) as holder:
            try:
                assert holder.stdout is not None
                port = holder.stdout.readline().rsplit(":", 1)[1].strip()
                result = subprocess.run(
                    [*RUNNERPOOL, "runner", "--port", port],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=False,
                )
                assert result.returncode == 1
                assert f"cannot serve on 127.0.0.1:{port}" in result.stderr
            finally:
                holder.send_signal(signal.SIGTERM)
                holder.wait(timeout=10)


class TestRunnerProcess:
    def test_runner_serves_status_and_stops_on_sigint(self) -> None:
        """A runner process answers `runnerpool status`, and exits 0 on SIGINT."""
        with subprocess.Popen(
            [*RUNNERPOOL, "runner", "--port", "0", "--max-calls", "4"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "FN_MAX_TOTAL_MEMORY_BYTES": str(256 * 1024 * 1024)},
        ) as process:
            try:
                assert process.stdout is not None
                line = process.stdout.readline()
                address = line.removeprefix("runner listening on ").strip()
                result = subprocess.run(
                    [*RUNNERPOOL, "status", address],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    check=True,
                )
                status = json.loads(result.stdout)
                assert status["active_request_count"] == 0
                assert status["requests_received"] == 0
            finally:
                process.send_signal(signal.SIGINT)
                _, stderr = process.communicate(timeout=10)
            assert process.returncode == 0
            assert "Runner stopped" in stderr
