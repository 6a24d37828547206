"""Logging configuration for the command line only: the library never adds handlers.

Library code logs with ``extra={"call_id": ..., "runner_addr": ...}``; the ``json`` format
writes those fields, so logs can be searched by call and by runner.
"""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any

__all__ = ["JsonFormatter", "configure_logging"]

#: The attributes every LogRecord has; anything else came from ``extra``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and every ``extra`` field."""

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a line of JSON."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


#: Functions' lines (``runnerpool.fdk``'s function log): their ids before each line.
_FUNCTION_TEXT = (
    "%(asctime)s %(levelname)s %(name)s: app=%(app_id)s fn=%(fn_id)s call=%(call_id)s "
    "%(stream)s: %(message)s"
)
_NO_IDS = {"app_id": "-", "fn_id": "-", "call_id": "-", "stream": "-"}


def configure_logging(level: str, log_format: str = "text") -> None:
    """Send runnerpool's logs to stderr at ``level`` and above, as text or JSON lines.

    Functions' own lines (logger ``runnerpool.function``, at INFO) are shown whatever
    ``level`` says: they are the functions' output, not runnerpool's messages (``runnerpool
    runner --no-function-logs`` turns them off).
    """
    formatter: dict[str, Any] = (
        {"()": JsonFormatter}
        if log_format == "json"
        else {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    )
    function_formatter = (
        dict(formatter)
        if log_format == "json"
        else {"()": logging.Formatter, "fmt": _FUNCTION_TEXT, "defaults": _NO_IDS}
    )
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter, "function": function_formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "main",
                "stream": "ext://sys.stderr",
            },
            "function": {
                "class": "logging.StreamHandler",
                "formatter": "function",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "runnerpool": {"handlers": ["stderr"], "level": level.upper()},
            "runnerpool.function": {"handlers": ["function"], "level": "INFO", "propagate": False},
        },
    }
    logging.config.dictConfig(config)
