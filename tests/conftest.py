"""Shared fixtures: a clean metrics state for every test, and the Hypothesis profile."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from runnerpool import _logging, metrics

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=200
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

# Copies of the reference vectors: the suite reads nothing outside the repository.
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def _no_placer_views() -> Iterator[None]:
    """Every test starts and ends with no metric views registered."""
    metrics.unregister_placer_views()
    metrics.unregister_lb_agent_views()
    yield
    metrics.unregister_placer_views()
    metrics.unregister_lb_agent_views()


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """Logging as configured by the command line (handlers, levels, hooks) ends with the test.

    A CliRunner test configures logging on streams that are closed after it.
    """
    names = ["", "runnerpool", _logging.ACCESS_LOGGER]
    saved = [
        (
            logging.getLogger(name),
            logging.getLogger(name).handlers[:],
            logging.getLogger(name).level,
        )
        for name in names
    ]
    hooks = (warnings.showwarning, sys.excepthook, threading.excepthook, _logging._format)
    yield
    for logger, handlers, level in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
    logging.captureWarnings(False)
    warnings.showwarning, sys.excepthook, threading.excepthook, _logging._format = hooks


@pytest.fixture(scope="session")
def ch_vectors() -> dict[str, Any]:
    """The consistent-hash vectors (Fn's exact placement and the canonical jump hash)."""
    path = DATA / "ch-vectors.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data
