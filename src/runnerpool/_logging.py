"""Logging configuration for the command line only: the library never adds handlers.

Library code logs with ``extra={"call_id": ..., "runner_addr": ...}``; the ``json`` format
writes those fields, so logs can be searched by call and by runner.

:func:`configure_logging` puts one handler on the root logger, so that every line on stderr
has the chosen format: runnerpool's messages, other libraries' (uvicorn, grpclib, asyncio),
Python warnings, and, in JSON mode, uncaught exceptions.
"""

from __future__ import annotations

import json
import logging
import logging.config
import sys
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final

__all__ = [
    "ACCESS_LOGGER",
    "FUNCTION_LOGGER",
    "LOG_FORMATS",
    "LOG_LEVELS",
    "JsonFormatter",
    "announce",
    "configure_logging",
    "json_mode",
]

#: The level names ``--log-level`` and ``FN_LOG_LEVEL`` accept: logrus's, as Fn parses them
#: (case-insensitive). Python has no trace level, nor fatal and panic ones.
LOG_LEVELS: Final[Mapping[str, int]] = {
    "trace": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}

#: The formats ``--log-format`` and ``FN_LOG_FORMAT`` accept, as Fn's.
LOG_FORMATS: Final = ("text", "json")

#: The logger of the load balancer's access log: one line per call, whatever the log level.
ACCESS_LOGGER: Final = "runnerpool.access"
#: The logger of the functions' own lines (their stdout and stderr), on the runner.
FUNCTION_LOGGER: Final = "runnerpool.function"

#: The attributes every LogRecord has; anything else came from ``extra``.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: The format :func:`configure_logging` set last; :func:`announce` and error reports follow it.
_format = "text"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and every ``extra`` field.

    An exception (``exc_info``) is the ``exception`` field: its traceback, in the same line.
    """

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
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


#: Functions' lines (``runnerpool.fdk``'s function log): their ids before each line.
_FUNCTION_TEXT = (
    "%(asctime)s %(levelname)s %(name)s: app=%(app_id)s fn=%(fn_id)s call=%(call_id)s "
    "%(stream)s: %(message)s"
)
_NO_IDS = {"app_id": "-", "fn_id": "-", "call_id": "-", "stream": "-"}


def configure_logging(level: str, log_format: str = "text") -> None:
    """Send every log line to stderr, as text or as JSON objects.

    runnerpool's messages are shown from ``level`` up; other libraries' (uvicorn, grpclib,
    asyncio) and Python warnings from ``warning`` up, or from ``level`` if higher. The access
    log (:data:`ACCESS_LOGGER`) is shown at any level: whoever turns it on wants it. In JSON
    mode an uncaught exception is logged too (one line, ``exception`` holding the traceback),
    instead of Python's plain-text traceback.

    Args:
        level: A name of :data:`LOG_LEVELS` (any case).
        log_format: ``"text"`` or ``"json"``.

    Functions' own lines (logger :data:`FUNCTION_LOGGER`, at INFO) are shown whatever
    ``level`` says: they are the functions' output, not runnerpool's messages (``runnerpool
    runner --no-function-logs`` turns them off).

    Raises:
        ValueError: If ``level`` or ``log_format`` is unknown.
    """
    global _format
    number = LOG_LEVELS.get(level.lower())
    if number is None:
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LOG_LEVELS)}")
    log_format = log_format.lower()
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; use text or json")
    formatter: dict[str, Any] = (
        {"()": JsonFormatter} if log_format == "json" else {"format": _TEXT_FORMAT}
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
        "root": {"handlers": ["stderr"], "level": max(number, logging.WARNING)},
        "loggers": {
            "runnerpool": {"level": number},
            ACCESS_LOGGER: {"level": logging.INFO},
            # Functions' output, not runnerpool's messages: shown whatever the level (runner
            # --no-function-logs turns it off), with the call's ids before each line.
            FUNCTION_LOGGER: {"handlers": ["function"], "level": logging.INFO, "propagate": False},
        },
    }
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
    _format = log_format
    if log_format == "json":
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread
    else:
        sys.excepthook = sys.__excepthook__
        threading.excepthook = threading.__excepthook__


def json_mode() -> bool:
    """Return whether :func:`configure_logging` last chose the JSON format."""
    return _format == "json"


def announce(message: str, **fields: str) -> None:
    """Write a line on stdout for whoever started the process, in the log format.

    In text mode the line is ``message``; in JSON mode it is a JSON object like a log line's,
    with ``fields`` as keys (``runnerpool dev`` reads a runner's ``address`` from it).
    """
    if _format == "json":
        record = logging.makeLogRecord(
            {"name": "runnerpool", "levelname": "INFO", "msg": message, **fields}
        )
        message = JsonFormatter().format(record)
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def _log_uncaught(
    kind: type[BaseException], error: BaseException, traceback: TracebackType | None
) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, traceback)
        return
    logging.getLogger("runnerpool").critical(
        "Uncaught exception: %r", error, exc_info=(kind, error, traceback)
    )


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    thread = args.thread.name if args.thread is not None else "?"
    logging.getLogger("runnerpool").critical(
        "Uncaught exception in thread %s: %r",
        thread,
        args.exc_value,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
