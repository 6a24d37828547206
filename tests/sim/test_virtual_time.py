"""The simulator's placers see only virtual time: no real clock is read during a run."""

from __future__ import annotations

import ast
import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import _pytest
import hypothesis
import pytest

from runnerpool import PlacerConfig
from runnerpool.placers import create_placer
from runnerpool.sim import SimulationSettings, simulate
from runnerpool.testing import FakeCall, FakeRunner, FakeRunnerPool, busy, succeed

#: Every real clock of the time module: a read of any of them mixes real and virtual time.
REAL_CLOCKS = frozenset(
    {
        time.monotonic,
        time.monotonic_ns,
        time.perf_counter,
        time.perf_counter_ns,
        time.time,
        time.time_ns,
    }
)

#: Where the test tooling lives: hypothesis times garbage collections from a gc callback,
#: which runs inside whatever frame triggered the collection; its reads are not the run's.
TEST_TOOLING = tuple(
    str(Path(module.__file__).parent) for module in (hypothesis, _pytest) if module.__file__
)

SRC = Path(__file__).resolve().parents[2] / "src" / "runnerpool"


@contextmanager
def real_clock_reads() -> Iterator[list[str]]:
    """Record every call of a real clock, however the caller named it, while the block runs.

    A profile hook sees each call of a built-in function (``c_call``), so a module that did
    ``from time import monotonic`` or kept ``time.monotonic`` in a default is caught too:
    patching ``time.monotonic`` would miss both.
    """
    reads: list[str] = []

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if (
            event == "c_call"
            and arg in REAL_CLOCKS
            and not frame.f_code.co_filename.startswith(TEST_TOOLING)
        ):
            reads.append(f"{arg.__name__} from {frame.f_code.co_filename}:{frame.f_lineno}")

    previous: Callable[..., Any] | None = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield reads
    finally:
        sys.setprofile(previous)


@pytest.mark.parametrize("backoff", ["fixed", "exponential", "release", "fifo"])
def test_a_simulated_run_reads_no_real_clock(backoff: str) -> None:
    """Every placer under every back-off mode runs a busy workload on the virtual clock only.

    Two small runners at full utilisation refuse calls, so the placers back off, wait for
    releases, queue (``"fifo"``), give up at their 1 s timeout and refresh runner status
    (``least-loaded``): every path that reads the time runs, and none reads a real clock.
    """
    settings = SimulationSettings(
        duration=15.0,
        runners=2,
        runner_memory=512,
        functions=5,
        utilisation=1.5,
        placer_timeout=1.0,
    )
    placers = ["ch", "naive", "bounded", "rendezvous", "least-loaded"]
    with real_clock_reads() as reads:
        reports = simulate(settings, placers, backoffs=[backoff])  # type: ignore[list-item]
    assert reads == []
    assert all(report.calls > 0 for report in reports)
    # The workload is heavy enough that calls waited and some gave up; outside the fifo mode
    # (where a waiting call takes its place in the queue instead) runners refused them again.
    assert all(report.rejected > 0 for report in reports)
    if backoff != "fifo":
        assert all(report.attempts_mean > 1.0 for report in reports)


def test_a_placer_on_the_default_runtime_reads_the_real_clock() -> None:
    """The detector works: outside the simulator, a placer reads ``time.monotonic``."""

    async def place() -> None:
        runner = FakeRunner("r", busy(), then=succeed())
        placer = create_placer("naive", PlacerConfig(retry_all_delay=0.001))
        await placer.place_call(FakeRunnerPool([runner]), FakeCall())

    loop = asyncio.new_event_loop()
    try:
        with real_clock_reads() as reads:
            loop.run_until_complete(place())
    finally:
        loop.close()
    assert any("placers" in read for read in reads)


def test_no_mock_in_the_package() -> None:
    """No module of the package imports ``unittest.mock``: dependencies are injected."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module is not None:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            if any(name.startswith("unittest.mock") for name in names):
                offenders.append(str(path.relative_to(SRC)))
    assert offenders == []
