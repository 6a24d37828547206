"""The command line's log formats."""

from __future__ import annotations

import json
import logging

from runnerpool._logging import JsonFormatter


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
