"""The command line's logging: levels, formats, and every line JSON in JSON mode."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from typing import Any

import pytest

from runnerpool._logging import ACCESS_LOGGER, JsonFormatter, announce, configure_logging


class TestJsonFormatter:
    def test_extra_fields_are_kept(self) -> None:
        """A JSON log line carries the message and the call's fields from ``extra``."""
        record = logging.makeLogRecord(
            {
                "name": "runnerpool.lb._agent",
                "levelname": "INFO",
                "msg": "Call %s ended: %s",
                "args": ("c1", "completed"),
                "call_id": "c1",
                "runner_addr": "127.0.0.1:9190",
                "fn_id": None,
            }
        )
        entry = json.loads(JsonFormatter().format(record))
        assert entry["message"] == "Call c1 ended: completed"
        assert (entry["level"], entry["logger"]) == ("info", "runnerpool.lb._agent")
        assert (entry["call_id"], entry["runner_addr"]) == ("c1", "127.0.0.1:9190")
        assert "fn_id" not in entry
        assert "args" not in entry


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new Python process; return its outcome, stdout and stderr as text."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    """Parse every line of ``text`` as a JSON object (failing the test on any other line)."""
    entries = []
    for line in text.splitlines():
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        entries.append(entry)
    return entries


class TestConfigureLogging:
    def test_levels_are_fns_names_in_any_case(self) -> None:
        """Fn's (logrus's) level names are accepted in any case; others are a clear error."""
        configure_logging("WARN", "json")
        assert logging.getLogger("runnerpool").level == logging.WARNING
        configure_logging("Trace", "text")
        assert logging.getLogger("runnerpool").level == logging.DEBUG
        configure_logging("panic", "TEXT")
        assert logging.getLogger("runnerpool").level == logging.CRITICAL
        with pytest.raises(ValueError, match="unknown log level 'loud'"):
            configure_logging("loud")
        with pytest.raises(ValueError, match="unknown log format 'xml'"):
            configure_logging("info", "xml")

    def test_other_libraries_from_warning_up_access_log_always(self) -> None:
        """Other loggers show warnings and up; the access log shows at any level."""
        configure_logging("debug")
        assert logging.getLogger().level == logging.WARNING
        assert logging.getLogger("runnerpool").getEffectiveLevel() == logging.DEBUG
        configure_logging("error")
        assert logging.getLogger().level == logging.ERROR
        assert logging.getLogger(ACCESS_LOGGER).getEffectiveLevel() == logging.INFO

    def test_every_line_is_json_in_json_mode(self) -> None:
        """In JSON mode, runnerpool's, another library's and a warning's lines are JSON objects."""
        result = run_python(
            "import logging, warnings\n"
            "from runnerpool._logging import configure_logging\n"
            "configure_logging('info', 'json')\n"
            "logging.getLogger('runnerpool.x').info('mine', extra={'call_id': 'c1'})\n"
            "logging.getLogger('uvicorn.error').warning('theirs')\n"
            "logging.getLogger('grpclib.server').info('hidden: below warning')\n"
            "warnings.warn('careful\\nnow', UserWarning, stacklevel=1)\n"
        )
        assert result.returncode == 0, result.stderr
        entries = json_lines(result.stderr)
        assert [(e["logger"], e["level"]) for e in entries] == [
            ("runnerpool.x", "info"),
            ("uvicorn.error", "warning"),
            ("py.warnings", "warning"),
        ]
        assert entries[0]["call_id"] == "c1"
        assert "UserWarning: careful\nnow" in entries[2]["message"]

    def test_uncaught_exception_is_one_json_line(self) -> None:
        """In JSON mode an uncaught exception is one JSON line holding its traceback."""
        result = run_python(
            "from runnerpool._logging import configure_logging\n"
            "configure_logging('info', 'json')\n"
            "def broken():\n"
            "    raise RuntimeError('boom')\n"
            "broken()\n"
        )
        assert result.returncode == 1
        [entry] = json_lines(result.stderr)
        assert entry["level"] == "critical"
        assert entry["message"] == "Uncaught exception: RuntimeError('boom')"
        assert "Traceback (most recent call last)" in entry["exception"]
        assert "in broken" in entry["exception"]

    def test_uncaught_exception_in_a_thread_is_one_json_line(self) -> None:
        """In JSON mode a thread's uncaught exception is one JSON line too."""
        result = run_python(
            "import threading\n"
            "from runnerpool._logging import configure_logging\n"
            "configure_logging('info', 'json')\n"
            "def broken():\n"
            "    raise RuntimeError('boom')\n"
            "thread = threading.Thread(target=broken, name='worker')\n"
            "thread.start()\n"
            "thread.join()\n"
        )
        assert result.returncode == 0
        [entry] = json_lines(result.stderr)
        assert entry["message"] == "Uncaught exception in thread worker: RuntimeError('boom')"
        assert "in broken" in entry["exception"]

    def test_text_mode_keeps_pythons_traceback(self) -> None:
        """Back in text mode, an uncaught exception is Python's usual traceback."""
        result = run_python(
            "from runnerpool._logging import configure_logging\n"
            "configure_logging('info', 'json')\n"
            "configure_logging('info', 'text')\n"
            "raise RuntimeError('boom')\n"
        )
        assert result.stderr.startswith("Traceback (most recent call last)")
        assert result.stderr.endswith("RuntimeError: boom\n")


class TestAnnounce:
    def test_text_then_json(self, capsys: pytest.CaptureFixture[str]) -> None:
        """The ready line is the message in text mode, a JSON object with its fields in JSON."""
        configure_logging("info", "text")
        announce("runner listening on 127.0.0.1:1", address="127.0.0.1:1")
        configure_logging("info", "json")
        announce("runner listening on 127.0.0.1:1", address="127.0.0.1:1")
        text, line = capsys.readouterr().out.splitlines()
        assert text == "runner listening on 127.0.0.1:1"
        entry = json.loads(line)
        assert entry["message"] == text
        assert (entry["level"], entry["address"]) == ("info", "127.0.0.1:1")
