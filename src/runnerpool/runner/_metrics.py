"""The runner's own metrics: what it admitted, refused and ran, and what it holds now.

Fn's runner exports its agent's views; runnerpool's runner exports what an operator sizes and
alerts on, under ``runnerpool_runner_*``:

==============================================  =========  =====================================
metric                                          type       what
==============================================  =========  =====================================
``runnerpool_runner_admissions_total``          counter    calls admitted (they will run)
``runnerpool_runner_nacks_total{reason}``       counter    503 NACKs: ``concurrency`` (call
                                                           slots full), ``memory``, ``draining``,
                                                           ``executor`` (its own refusal)
``runnerpool_runner_calls_total{outcome}``      counter    calls ended: ``success``,
                                                           ``function_error`` (the user's: 502,
                                                           413), ``timeout`` (504), ``error``
                                                           (the platform's), ``rejected`` (bad
                                                           input, never admitted)
``runnerpool_runner_call_duration_seconds``     histogram  admitted calls, start to end
``runnerpool_runner_cold_starts_total``         counter    function processes started
``runnerpool_runner_evictions_total``           counter    idle processes stopped to make room
``runnerpool_runner_idle_expirations_total``    counter    idle processes past their idle timeout
``runnerpool_runner_environment_builds_total``  counter    Python environments built, by
                                                           ``result`` (``ok``, ``failed``)
``runnerpool_runner_calls_in_flight``           gauge      calls running now
``runnerpool_runner_call_slots``                gauge      the call cap (absent: no cap)
``runnerpool_runner_memory_reserved_bytes``     gauge      memory reserved by calls and processes
``runnerpool_runner_memory_capacity_bytes``     gauge      memory that may be reserved (absent:
                                                           no limit)
``runnerpool_runner_memory_used_bytes``         gauge      memory the function processes use
``runnerpool_runner_hot_processes{state}``      gauge      function processes ``busy``, ``idle``
==============================================  =========  =====================================

Events are counted where they happen, one call per site; what a runner holds is read when
scraped, so holding it costs nothing between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .._errors import CallTimeoutError, FuncError

if TYPE_CHECKING:
    from ._service import RunnerService

__all__ = ["NACK_REASONS", "OUTCOMES", "HotProcesses", "RunnerMetrics", "call_outcome"]

#: Why a runner NACKs a call.
NACK_REASONS = ("concurrency", "memory", "draining", "executor")

#: How a call the runner did not NACK ended.
OUTCOMES = ("success", "function_error", "timeout", "error", "rejected")

#: Seconds: a warm call is milliseconds, a cold one a tenth of a second, a slow one minutes.
CALL_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

_MB = 1024 * 1024


def call_outcome(error: BaseException | None) -> str:
    """Return the ``outcome`` label of an admitted call that ended with ``error``."""
    if error is None:
        return "success"
    if isinstance(error, CallTimeoutError):
        return "timeout"
    if isinstance(error, FuncError):
        return "function_error"
    return "error"


@runtime_checkable
class HotProcesses(Protocol):
    """An executor that keeps function processes (:class:`~runnerpool.fdk.FdkExecutor`)."""

    def hot_processes(self) -> tuple[int, int, int]:
        """Return its processes busy, its processes idle, and the bytes they use."""


class RunnerMetrics:
    """The counters of one runner, and the collector of what it holds.

    Args:
        registry: Where to register them (a registry of their own by default: a process
            may hold several runners, each served on its own port).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True) if registry is None else registry
        registry = self.registry
        self._admissions = Counter(
            "runnerpool_runner_admissions", "Calls the runner admitted", registry=registry
        )
        nacks = Counter(
            "runnerpool_runner_nacks",
            "Calls the runner refused with the 503 NACK, by reason",
            ["reason"],
            registry=registry,
        )
        calls = Counter(
            "runnerpool_runner_calls",
            "Calls the runner did not NACK, by outcome",
            ["outcome"],
            registry=registry,
        )
        # Every label value exported from the start (at 0), so rates and ratios exist before
        # the first refusal or failure; the children are bound once, not looked up per call.
        self._nacks = {reason: nacks.labels(reason) for reason in NACK_REASONS}
        self._calls = {outcome: calls.labels(outcome) for outcome in OUTCOMES}
        self._duration = Histogram(
            "runnerpool_runner_call_duration_seconds",
            "Seconds from an admitted call's start to its end",
            buckets=CALL_DURATION_BUCKETS,
            registry=registry,
        )
        self._cold_starts = Counter(
            "runnerpool_runner_cold_starts", "Function processes started", registry=registry
        )
        self._evictions = Counter(
            "runnerpool_runner_evictions",
            "Idle function processes stopped to make room for another function's",
            registry=registry,
        )
        self._expirations = Counter(
            "runnerpool_runner_idle_expirations",
            "Idle function processes stopped at the end of their idle timeout",
            registry=registry,
        )
        builds = Counter(
            "runnerpool_runner_environment_builds",
            "Python environments built for function bundles, by result",
            ["result"],
            registry=registry,
        )
        self._builds = {result: builds.labels(result) for result in ("ok", "failed")}
        self._state: _StateCollector | None = None

    def admitted(self) -> None:
        """Count a call admitted."""
        self._admissions.inc()

    def nacked(self, reason: str) -> None:
        """Count a NACK; ``reason`` is one of :data:`NACK_REASONS`."""
        self._nacks[reason].inc()

    def ended(self, outcome: str, seconds: float | None = None) -> None:
        """Count a call's end; ``seconds`` it ran, for an admitted call."""
        self._calls[outcome].inc()
        if seconds is not None:
            self._duration.observe(seconds)

    def cold_start(self) -> None:
        """Count a function process started."""
        self._cold_starts.inc()

    def evicted(self) -> None:
        """Count an idle process stopped to make room."""
        self._evictions.inc()

    def expired(self) -> None:
        """Count an idle process stopped at the end of its idle timeout."""
        self._expirations.inc()

    def environment_built(self, ok: bool) -> None:
        """Count an environment build that succeeded (``ok``) or failed."""
        self._builds["ok" if ok else "failed"].inc()

    def watch(self, service: RunnerService) -> None:
        """Export what ``service`` holds (calls, memory, processes), read at each scrape.

        Watching another service replaces the first.
        """
        if self._state is not None:
            self.registry.unregister(self._state)
        self._state = _StateCollector(service)
        self.registry.register(self._state)


class _StateCollector(Collector):
    """Reads a runner service's calls, capacity and processes when scraped."""

    def __init__(self, service: RunnerService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        service = self._service
        capacity = service.capacity
        yield GaugeMetricFamily(
            "runnerpool_runner_calls_in_flight", "Calls running now", value=service.active
        )
        if capacity.max_calls is not None:
            yield GaugeMetricFamily(
                "runnerpool_runner_call_slots",
                "Calls the runner runs at once at most",
                value=capacity.max_calls,
            )
        yield GaugeMetricFamily(
            "runnerpool_runner_memory_reserved_bytes",
            "Memory reserved by calls and function processes",
            value=capacity.used_mb * _MB,
        )
        if capacity.memory_mb is not None:
            yield GaugeMetricFamily(
                "runnerpool_runner_memory_capacity_bytes",
                "Memory calls and function processes may reserve",
                value=capacity.memory_mb * _MB,
            )
        executor = service.executor
        if isinstance(executor, HotProcesses):
            busy, idle, used = executor.hot_processes()
            processes = GaugeMetricFamily(
                "runnerpool_runner_hot_processes", "Function processes, by state", labels=["state"]
            )
            processes.add_metric(["busy"], busy)
            processes.add_metric(["idle"], idle)
            yield processes
            yield GaugeMetricFamily(
                "runnerpool_runner_memory_used_bytes",
                "Memory the function processes use (their cgroups', or their resident set)",
                value=used,
            )

    def describe(self) -> Iterator[Metric]:
        # Nothing: which families exist depends on the service (a cap, a memory limit).
        return iter(())
