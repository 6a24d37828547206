"""The global options --log-level and --log-format, and the access log option.

The global options go before or after the subcommand, or come from Fn's FN_LOG_LEVEL and
FN_LOG_FORMAT; errors and the ready line follow the chosen format.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from runnerpool.cli import main

RUNNERPOOL = [sys.executable, "-m", "runnerpool"]
#: A runner command that fails after parsing its options: the error shows the log format.
BAD_PORT = ["runner", "--port", "70000"]
PORT_ERROR = "Invalid value for '--port': 70000 is not in the range 0<=x<=65535."


def invoke(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``runnerpool ARGS`` in process; return its exit code and its stderr."""
    result = CliRunner().invoke(main, args, env=env)
    return result.exit_code, result.stderr


class TestWhereTheOptionsGo:
    @pytest.mark.parametrize(
        ("args", "env"),
        [
            (["--log-format", "json", *BAD_PORT], None),
            ([*BAD_PORT, "--log-format", "json"], None),
            ([BAD_PORT[0], "--log-format", "JSON", *BAD_PORT[1:]], None),
            (BAD_PORT, {"FN_LOG_FORMAT": "json"}),
            (["--log-format", "text", *BAD_PORT, "--log-format", "json"], None),
            ([*BAD_PORT, "--log-format", "json"], {"FN_LOG_FORMAT": "text"}),
        ],
        ids=["before", "after", "between", "env", "after-wins", "flag-beats-env"],
    )
    def test_json_errors(self, args: list[str], env: dict[str, str] | None) -> None:
        """--log-format json anywhere on the command line, or from the env, gives JSON errors."""
        code, stderr = invoke(args, env)
        assert code == 2
        [line] = stderr.splitlines()
        entry = json.loads(line)
        assert (entry["level"], entry["message"]) == ("critical", PORT_ERROR)

    @pytest.mark.parametrize(
        ("args", "env"),
        [
            (BAD_PORT, None),
            (["--log-format", "json", *BAD_PORT, "--log-format", "text"], None),
            (["--log-format", "text", *BAD_PORT], {"FN_LOG_FORMAT": "json"}),
        ],
        ids=["default", "subcommand-wins", "flag-beats-env"],
    )
    def test_text_errors(self, args: list[str], env: dict[str, str] | None) -> None:
        """In text mode the error is click's usual usage message."""
        code, stderr = invoke(args, env)
        assert code == 2
        assert stderr.startswith("Usage: ")
        assert f"Error: {PORT_ERROR}" in stderr

    @pytest.mark.parametrize(
        ("args", "env", "level"),
        [
            (["status", "--log-level", "debug", "no-port"], None, logging.DEBUG),
            (["--log-level", "WARN", "status", "no-port"], None, logging.WARNING),
            (["status", "no-port"], {"FN_LOG_LEVEL": "Error"}, logging.ERROR),
            (["status", "no-port", "--log-level", "trace"], {"FN_LOG_LEVEL": "error"}, 10),
            (["--log-level", "fatal", "status", "no-port"], {"FN_LOG_LEVEL": "debug"}, 50),
            (["status", "no-port"], None, logging.INFO),
        ],
        ids=["after", "before", "env", "flag-beats-env", "group-flag-beats-env", "default"],
    )
    def test_log_level(self, args: list[str], env: dict[str, str] | None, level: int) -> None:
        """--log-level takes Fn's names in any case, anywhere, else FN_LOG_LEVEL's."""
        code, _ = invoke(args, env)
        assert code == 2
        assert logging.getLogger("runnerpool").level == level

    def test_bad_level_is_a_usage_error(self) -> None:
        """An unknown level, from the command line or FN_LOG_LEVEL, exits 2 naming the choices."""
        for args, env in (
            (["runner", "--log-level", "loud"], None),
            (["runner"], {"FN_LOG_LEVEL": "loud"}),
        ):
            code, stderr = invoke(args, env)
            assert code == 2
            assert "Invalid value for '--log-level': 'loud' is not one of 'trace'" in stderr

    def test_every_subcommand_takes_them(self) -> None:
        """Each subcommand's help lists the global options with Fn's variables."""
        for command in main.commands:
            result = CliRunner().invoke(main, [command, "--help"])
            text = " ".join(result.output.split())
            assert "--log-level" in text, command
            assert "[env FN_LOG_FORMAT]" in text, command

    def test_access_log_option(self) -> None:
        """The lb and dev commands take --access-log/--no-access-log, on by default."""
        for command in ("lb", "dev"):
            text = " ".join(CliRunner().invoke(main, [command, "--help"]).output.split())
            assert "--access-log / --no-access-log" in text
            assert "[env FN_ACCESS_LOG]" in text
            [option] = [p for p in main.commands[command].params if p.name == "access_log"]
            assert option.default is True


class TestRealProcess:
    @pytest.mark.parametrize(
        ("args", "env"),
        [
            (["runner", "--port", "0", "--log-format", "json", "--log-level", "warning"], {}),
            (["runner", "--port", "0"], {"FN_LOG_FORMAT": "json", "FN_LOG_LEVEL": "WARNING"}),
        ],
        ids=["flags-after", "env"],
    )
    def test_runner_in_json_mode(self, args: list[str], env: dict[str, str]) -> None:
        """A runner in JSON mode (flags after its name, or Fn's variables) writes only JSON.

        Its ready line on stdout is JSON too, and stderr follows the chosen level.
        """
        with subprocess.Popen(
            [*RUNNERPOOL, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        ) as process:
            assert process.stdout is not None
            ready = json.loads(process.stdout.readline())
            assert ready["message"] == f"runner listening on {ready['address']}"
            assert ready["address"].startswith("127.0.0.1:")
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
            assert process.returncode == 0
        # At warning, the runner's info lines ("Runner listening", "Runner stopped") are gone.
        assert [json.loads(line) for line in stderr.splitlines()] == []


class TestErrorsInJsonMode:
    def test_not_standalone_raises(self) -> None:
        """Called with standalone_mode=False, the command line raises click's errors."""
        with pytest.raises(click.BadParameter, match="not host:port"):
            main.main(["--log-format", "json", "status", "no-port"], standalone_mode=False)

    def test_interrupted_command_is_one_json_line(self) -> None:
        """Ctrl-C in a command, in JSON mode, is one JSON line on stderr and exit code 1."""
        with socket.socket() as listener:
            # A "runner" that accepts the connection and never answers.
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            host, port = listener.getsockname()
            with subprocess.Popen(
                [*RUNNERPOOL, "status", f"{host}:{port}", "--log-format", "json"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ) as process:
                listener.settimeout(30)
                connection, _ = listener.accept()  # the command is running
                with connection:
                    process.send_signal(signal.SIGINT)
                    stdout, stderr = process.communicate(timeout=30)
        assert process.returncode == 1
        assert stdout == ""
        [entry] = [json.loads(line) for line in stderr.splitlines()]
        assert (entry["level"], entry["message"]) == ("critical", "Aborted")
