"""Shared fixtures: a clean metrics state for every test, and the Hypothesis profile."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from runnerpool import metrics

settings.register_profile(
    "default", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=200
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

# Copied from ../shared/reference: the suite reads nothing outside the repository.
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True)
def _no_placer_views() -> Iterator[None]:
    """Every test starts and ends with no metric views registered."""
    metrics.unregister_placer_views()
    metrics.unregister_lb_agent_views()
    yield
    metrics.unregister_placer_views()
    metrics.unregister_lb_agent_views()


@pytest.fixture(scope="session")
def ch_vectors() -> dict[str, Any]:
    """The consistent-hash vectors (Fn's exact placement and the canonical jump hash)."""
    path = DATA / "ch-vectors.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data
