"""Logging configuration for the command line only: the library never adds handlers."""

from __future__ import annotations

import logging.config
from typing import Any

__all__ = ["configure_logging"]


def configure_logging(level: str) -> None:
    """Send runnerpool's logs to stderr, one line each, at ``level`` and above."""
    config: dict[str, Any] = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "line": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "line",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {"runnerpool": {"handlers": ["stderr"], "level": level.upper()}},
    }
    logging.config.dictConfig(config)
