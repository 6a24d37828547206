"""Drive the real placers with a synthetic workload on simulated runners, in virtual time."""

from __future__ import annotations

import asyncio
import importlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._config import BackoffMode, PlacerConfig
from .._errors import ServerBusyError
from .._interfaces import Runner
from .._model import DEFAULT_IDLE_TIMEOUT, Call
from ..placers import BasePlacer, LeastLoadedPlacer, create_placer
from ._clock import VirtualEventLoop, run_virtual, virtual_runtime
from ._runner import DEFAULT_COLD_START, SimCall, SimPool, SimRunner
from ._workload import Arrival, Workload, generate_workload

__all__ = [
    "PlacerReport",
    "SimulationSettings",
    "format_table",
    "homes_moved",
    "percentile",
    "run_placer",
    "simulate",
    "write_plots",
]


def percentile(values: Sequence[float], q: float) -> float:
    """Return the nearest-rank ``q``-th percentile (``0 < q <= 100``); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


#: The placers' defaults, which the simulation's placer knobs start from.
_FN = PlacerConfig()


@dataclass(frozen=True, slots=True)
class SimulationSettings:
    """The simulated cluster and workload.

    Attributes:
        seed: The seed of the workload (and of exponential back-off's jitter).
        duration: Seconds of arrivals, virtual.
        runners: How many runners.
        runner_memory: Each runner's memory, MB.
        functions: How many functions.
        utilisation: Offered load over total memory.
        idle_timeout: Seconds an idle hot instance lives.
        cold_start: Seconds a cold start adds.
        latency: Seconds an offer to a runner takes there and back (0: instant answers);
            ``bench/replay.py`` measures it on real runners.
        overhead: Seconds a call holds its runner beyond its run (0: none).
        backoff: The placers' back-off mode.
        release_hold: The ``"release"`` mode's hold, seconds.
        bounded_load_factor: ``c`` of the bounded-load placer.
        placer_timeout: Seconds a placer searches for a runner for a call: each call's
            deadline for its 503.
        lbs: How many load balancers place the workload, each with its own placer (own
            state and counts); calls go to them round robin.
    """

    seed: int = 1
    duration: float = 300.0
    runners: int = 8
    runner_memory: int = 8192
    functions: int = 200
    utilisation: float = 0.7
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    cold_start: float = DEFAULT_COLD_START
    latency: float = 0.0
    overhead: float = 0.0
    backoff: BackoffMode = _FN.backoff
    release_hold: float = _FN.release_hold
    bounded_load_factor: float = _FN.bounded_load_factor
    placer_timeout: float = _FN.placer_timeout
    lbs: int = 1

    def workload(self) -> Workload:
        """Generate the workload these settings describe."""
        return generate_workload(
            self.seed,
            duration=self.duration,
            functions=self.functions,
            capacity_mb=self.runners * self.runner_memory,
            utilisation=self.utilisation,
        )

    def make_runners(self) -> list[SimRunner]:
        """Return fresh runners ``runner-00``, ``runner-01``, ..."""
        return [
            SimRunner(
                f"runner-{index:02d}",
                self.runner_memory,
                idle_timeout=self.idle_timeout,
                cold_start=self.cold_start,
                latency=self.latency,
                overhead=self.overhead,
            )
            for index in range(self.runners)
        ]

    def placer_config(self, backoff: BackoffMode | None = None) -> PlacerConfig:
        """Return the placers' configuration: Fn's defaults with these settings' knobs.

        Args:
            backoff: The back-off mode; the settings' own by default.
        """
        return PlacerConfig(
            backoff=self.backoff if backoff is None else backoff,
            release_hold=self.release_hold,
            bounded_load_factor=self.bounded_load_factor,
            placer_timeout=self.placer_timeout,
        )


@dataclass(frozen=True, slots=True)
class PlacerReport:
    """What one placer did with the workload.

    Attributes:
        placer: The placer's name.
        backoff: The back-off mode.
        calls: Calls offered.
        placed: Calls a runner took.
        rejected: Calls no runner took (503): at the placer's timeout, or shed before it.
        shed_early: Share of calls refused before their placer's timeout (a full queue, or
            a wait the ``"fifo"`` queue could not meet).
        late_503s: Refused calls whose 503 came after their placer's timeout.
        warm_rate: Warm starts over placed calls.
        attempts_mean: Runners tried per call, mean.
        attempts_p99: Runners tried per call, 99th percentile.
        queue_p50: Seconds from arrival to commit, median (placed calls).
        queue_p99: The same, 99th percentile.
        peak_in_flight: The most calls in flight on any runner at once.
        load_imbalance: The busiest runner's time-averaged in-flight over the runners' mean.
        homes_moved: Share of functions whose first runner changed when one runner left.
        lbs: How many load balancers placed the calls.
    """

    placer: str
    backoff: str
    calls: int
    placed: int
    rejected: int
    shed_early: float
    late_503s: int
    warm_rate: float
    attempts_mean: float
    attempts_p99: float
    queue_p50: float
    queue_p99: float
    peak_in_flight: int
    load_imbalance: float
    homes_moved: float
    lbs: int = 1


def first_runner(placer: BasePlacer, fn_id: str, runners: Sequence[Runner]) -> str:
    """Return the address of the runner the placer tries first for a call of ``fn_id``."""
    order = iter(placer.runner_order(SimCall(Call(fn_id=fn_id)), runners))
    try:
        return runners[next(order) % len(runners)].address
    finally:
        close = getattr(order, "close", None)
        if close is not None:
            close()


def homes_moved(
    name: str,
    fn_ids: Sequence[str],
    runners: Sequence[Runner],
    removed: int | None = None,
    config: PlacerConfig | None = None,
) -> float:
    """Return the share of functions whose first runner changes when one runner leaves.

    Uses fresh placers (no load) and the placers' own :meth:`~BasePlacer.runner_order`.

    Args:
        name: The placer's name.
        fn_ids: The functions.
        runners: The runners before the change.
        removed: The index of the runner that leaves; the middle one by default.
        config: The placers' configuration.
    """
    if not fn_ids or len(runners) < 2:
        return 0.0
    index = len(runners) // 2 if removed is None else removed
    after = [runner for position, runner in enumerate(runners) if position != index]
    before_placer, after_placer = create_placer(name, config), create_placer(name, config)
    moved = sum(
        first_runner(before_placer, fn_id, runners) != first_runner(after_placer, fn_id, after)
        for fn_id in fn_ids
    )
    return moved / len(fn_ids)


async def _place(placer: BasePlacer, pool: SimPool, call: SimCall) -> bool:
    try:
        await placer.place_call(pool, call)
    except ServerBusyError:
        return False
    finally:
        call.ended_at = asyncio.get_running_loop().time()
    return True


#: Seconds between two status refreshes of the least-loaded placer, virtual.
STATUS_INTERVAL = 0.5


async def _refresh_status(placer: LeastLoadedPlacer, pool: SimPool) -> None:
    while True:
        await placer.refresh_status(pool.members)
        await asyncio.sleep(STATUS_INTERVAL)


async def _drive(
    placers: Sequence[BasePlacer],
    pool: SimPool,
    arrivals: Sequence[Arrival],
    progress: Callable[[int], None] | None,
) -> list[tuple[SimCall, bool]]:
    loop = asyncio.get_running_loop()
    # The least-loaded placer ranks runners by their status where it is fresh, as an LB
    # polling its runners would.
    refreshers = [
        loop.create_task(_refresh_status(placer, pool))
        for placer in placers
        if isinstance(placer, LeastLoadedPlacer)
    ]
    calls: list[SimCall] = []
    tasks: list[asyncio.Task[bool]] = []
    for number, arrival in enumerate(arrivals):
        wait = arrival.time - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        call = SimCall(
            Call(id=f"call-{number}", fn_id=arrival.fn_id, memory=arrival.memory),
            duration=arrival.duration,
            arrival=loop.time(),
        )
        calls.append(call)
        # Round robin over the load balancers, as a front load balancer would spread calls.
        placer = placers[number % len(placers)]
        tasks.append(loop.create_task(_place(placer, pool, call)))
        if progress is not None and number % 1000 == 999:
            progress(1000)
    outcomes = await asyncio.gather(*tasks)
    for refresher in refreshers:
        refresher.cancel()
    if progress is not None:
        progress(len(arrivals) % 1000)
    return list(zip(calls, outcomes, strict=True))


def run_placer(
    name: str,
    arrivals: Sequence[Arrival],
    runners: Sequence[SimRunner],
    *,
    config: PlacerConfig | None = None,
    seed: int = 0,
    horizon: float | None = None,
    fn_ids: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
    lbs: int = 1,
) -> PlacerReport:
    """Run the arrivals through ``lbs`` fresh placers ``name`` over ``runners``; report.

    Args:
        name: The placer's name for :func:`~runnerpool.placers.create_placer`.
        arrivals: The calls, sorted by time.
        runners: Fresh simulated runners.
        config: The placer's configuration.
        seed: The seed of exponential back-off's jitter.
        horizon: The time over which in-flight is averaged; the end of the run by default.
        fn_ids: The functions for :func:`homes_moved`; none by default.
        progress: Called with the number of arrivals started since the last call.
        lbs: How many load balancers, each its own placer; calls go to them round robin.

    Raises:
        ValueError: If ``lbs`` is below 1.
    """
    if lbs < 1:
        raise ValueError(f"lbs must be at least 1, got {lbs}")
    loop = VirtualEventLoop()
    # The load balancers share one seeded generator, as they shared the tracker's before.
    runtime = virtual_runtime(loop, seed)
    placers = [create_placer(name, config, runtime=runtime) for _ in range(lbs)]
    placer = placers[0]
    pool = SimPool(runners)
    results, end = run_virtual(_drive(placers, pool, arrivals, progress), loop)
    placed = [call for call, ok in results if ok]
    timeout = placer.config.placer_timeout
    # A float's rounding must not make a 503 at the timeout look early or late.
    refused = [
        call.ended_at - call.arrival for call, ok in results if not ok and call.ended_at is not None
    ]
    shed = sum(1 for waited in refused if waited < timeout - 1e-6)
    late = sum(1 for waited in refused if waited > timeout + 1e-6)
    warm = sum(1 for call in placed if call.warm)
    attempts = [float(call.attempts) for call, _ in results]
    queue = [call.committed_at - call.arrival for call in placed if call.committed_at is not None]
    until = end if horizon is None else horizon
    averages = [runner.in_flight_area(until) / until if until > 0 else 0.0 for runner in runners]
    mean = sum(averages) / len(averages) if averages else 0.0
    return PlacerReport(
        placer=name,
        backoff=placer.config.backoff,
        calls=len(results),
        placed=len(placed),
        rejected=len(results) - len(placed),
        shed_early=shed / len(results) if results else 0.0,
        late_503s=late,
        warm_rate=warm / len(placed) if placed else 0.0,
        attempts_mean=sum(attempts) / len(attempts) if attempts else 0.0,
        attempts_p99=percentile(attempts, 99),
        queue_p50=percentile(queue, 50),
        queue_p99=percentile(queue, 99),
        peak_in_flight=max((runner.max_in_flight for runner in runners), default=0),
        load_imbalance=max(averages) / mean if mean > 0 else 0.0,
        homes_moved=homes_moved(name, fn_ids, runners, config=config) if fn_ids else 0.0,
        lbs=lbs,
    )


def simulate(
    settings: SimulationSettings,
    placers: Sequence[str],
    progress: Callable[[int], None] | None = None,
    backoffs: Sequence[BackoffMode] = (),
) -> list[PlacerReport]:
    """Run the settings' workload through each placer in turn, on fresh runners.

    In-flight is averaged over the arrivals' ``duration``.

    Args:
        settings: The cluster and workload.
        placers: Placer names.
        progress: Called with the number of arrivals started since the last call.
        backoffs: Back-off modes, each run with every placer (placers vary fastest); the
            settings' own mode by default.
    """
    workload = settings.workload()
    fn_ids = [fn.fn_id for fn in workload.functions]
    return [
        run_placer(
            name,
            workload.arrivals,
            settings.make_runners(),
            config=settings.placer_config(backoff),
            seed=settings.seed,
            horizon=settings.duration,
            fn_ids=fn_ids,
            progress=progress,
            lbs=settings.lbs,
        )
        for backoff in (backoffs or [settings.backoff])
        for name in placers
    ]


_COLUMNS: tuple[tuple[str, str, Callable[[PlacerReport], Any]], ...] = (
    ("placer", "{:<12}", lambda r: r.placer),
    ("backoff", "{:<11}", lambda r: r.backoff),
    ("calls", "{:>7}", lambda r: r.calls),
    ("lbs", "{:>3}", lambda r: r.lbs),
    ("503s", "{:>5}", lambda r: r.rejected),
    ("shed%", "{:>5.2f}", lambda r: 100 * r.shed_early),
    ("late", "{:>4}", lambda r: r.late_503s),
    ("warm%", "{:>6.1f}", lambda r: 100 * r.warm_rate),
    ("att/call", "{:>8.2f}", lambda r: r.attempts_mean),
    ("att p99", "{:>7.0f}", lambda r: r.attempts_p99),
    ("q p50 ms", "{:>8.1f}", lambda r: 1000 * r.queue_p50),
    ("q p99 ms", "{:>8.1f}", lambda r: 1000 * r.queue_p99),
    ("peak", "{:>5}", lambda r: r.peak_in_flight),
    ("max/mean", "{:>8.2f}", lambda r: r.load_imbalance),
    ("moved%", "{:>6.1f}", lambda r: 100 * r.homes_moved),
)


def format_table(reports: Sequence[PlacerReport]) -> str:
    """Return the reports as a plain-text table, one placer a row."""

    def cells(values: Iterator[str]) -> str:
        return "  ".join(values).rstrip()

    widths = [len(fmt.format(getter(reports[0]))) if reports else 8 for _, fmt, getter in _COLUMNS]
    header = cells(
        title.ljust(width) if index == 0 else title.rjust(width)
        for index, ((title, _, _), width) in enumerate(zip(_COLUMNS, widths, strict=True))
    )
    rows = [cells(fmt.format(getter(report)) for _, fmt, getter in _COLUMNS) for report in reports]
    return "\n".join([header, *rows])


#: The plots :func:`write_plots` draws: file stem, title, value, whether a log scale helps.
PLOTS: tuple[tuple[str, str, Callable[[PlacerReport], float], bool], ...] = (
    ("warm", "warm starts (%)", lambda r: 100 * r.warm_rate, False),
    ("attempts", "attempts per call (mean)", lambda r: r.attempts_mean, True),
    ("queue_p99", "LB queueing delay p99 (ms)", lambda r: 1000 * r.queue_p99, False),
    ("load_imbalance", "busiest runner's mean in-flight / mean", lambda r: r.load_imbalance, False),
    ("homes_moved", "homes moved, middle runner removed (%)", lambda r: 100 * r.homes_moved, False),
)


def write_plots(
    reports: Sequence[PlacerReport], directory: Path, *, title: str = ""
) -> list[Path] | None:
    """Write one PNG bar chart per metric of :data:`PLOTS`: placers along, back-offs side by side.

    Uses matplotlib's Agg backend (no display needed), at a small size: the files are meant
    to be committed.

    Args:
        reports: The reports, as :func:`simulate` returns them.
        directory: Where to write; created if missing.
        title: A line added to every chart's title, e.g. the command's settings.

    Returns:
        The files written, or ``None`` if matplotlib is not installed.
    """
    try:
        matplotlib: Any = importlib.import_module("matplotlib")
    except ImportError:
        return None
    matplotlib.use("Agg")
    pyplot: Any = importlib.import_module("matplotlib.pyplot")
    directory.mkdir(parents=True, exist_ok=True)
    placers = list(dict.fromkeys(report.placer for report in reports))
    backoffs = list(dict.fromkeys(report.backoff for report in reports))
    by_key = {(report.placer, report.backoff): report for report in reports}
    width = 0.8 / len(backoffs)
    written = []
    for stem, label, value, log in PLOTS:
        figure, axes = pyplot.subplots(figsize=(7.2, 3.2), dpi=80)
        for number, backoff in enumerate(backoffs):
            xs = [p + (number - (len(backoffs) - 1) / 2) * width for p in range(len(placers))]
            ys = [
                value(by_key[placer, backoff]) if (placer, backoff) in by_key else 0.0
                for placer in placers
            ]
            axes.bar(xs, ys, width, label=backoff)
        axes.set_xticks(range(len(placers)), placers)
        positive = [report_value for report_value in map(value, reports) if report_value > 0]
        # A log scale only where values span orders of magnitude (Fn's 300 against 2.7).
        if log and positive and max(positive) >= 20 * min(positive):
            axes.set_yscale("log")
            label = f"{label}, log scale"
        axes.set_title(f"{label}\n{title}" if title else label, fontsize=10)
        if len(backoffs) > 1:
            # Beside the bars, not over them: a tall bar would hide under it.
            axes.legend(
                title="back-off",
                fontsize=8,
                title_fontsize=8,
                loc="upper left",
                bbox_to_anchor=(1.0, 1.0),
                frameon=False,
            )
        figure.tight_layout()
        path = directory / f"{stem}.png"
        # No timestamp or software version in the file: the same run writes the same bytes.
        figure.savefig(path, metadata={"Software": None})
        pyplot.close(figure)
        written.append(path)
    return written
