"""The simulator checked against reality: one workload through real processes and the simulator.

Generates the simulator's Azure-like workload (:func:`runnerpool.sim.generate_workload`) for
``--model-duration`` seconds on ``--runners`` runners of ``--runner-memory`` MB, scales its
arrival times and call durations by ``--scale`` (0.4: five model minutes in two real minutes;
the functions' idle timeout, 30 s in the model, scales with them), and runs it twice:

* **real**: a ``runnerpool lb`` with ``--placer``, ``--runners`` ``runnerpool runner
  --bundles bench/replay_bundles --max-memory ...`` and the FDK function ``sleep``, declared
  once per function of the workload with the function's memory (so each function has hot
  processes of its own), each call sleeping its duration (:mod:`bench._replay_cluster`);
* **sim**: the simulator in process, on the same arrivals, with the same runners, memory,
  idle timeout, placer and back-off, the cold start measured in the real run (the mean age of
  a process at its first call, from the kernel's start time of the process), and the round
  trip to a runner measured meanwhile (``Status`` calls from a process of their own). The
  ``sim-0`` row is the simulator with instant answers (round trip 0), its model before the
  replay.

Figures, the same definition on both sides:

* ``warm%``: calls that found an idle process of their function when a runner took them,
  over calls placed: real, one less the runners' process starts (``process_starts`` of
  ``runnerpool status``) over calls answered; sim, :class:`~runnerpool.sim.SimRunner`'s
  warm starts.
* ``att/call``: runners offered a call, mean: real, the load balancer's
  ``lb_placer_attempt_count`` (``/metrics``); sim, the simulated calls' attempts.
* ``calls max/mean`` and ``busy max/mean``: the busiest runner's calls, and its summed call
  durations, over the runners' mean.
* ``q p50``/``q p99``: seconds from a call's arrival to its function's start (real: the
  client's send to the function's clock; sim: the commit, plus the cold start if cold).

Targets (issue 17): warm rate within 5 points, attempts per call within 20%.

Run: ``python -m bench.replay`` (about 2.5 min per placer and seed; ``--help`` for the knobs).
At ``--scale 0.2`` a busy seed (822 calls in a minute, a third of them cold starts) saturates a
shared two-core machine: the runners then miss keepalives and the comparison measures the
machine, not the model.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from bench._replay_cluster import ClusterRun, run_cluster
from bench.fdk import default_wheelhouse
from runnerpool import PlacerConfig, RunnerCall
from runnerpool.placers import placer_names
from runnerpool.sim import (
    SimCall,
    SimRunner,
    Workload,
    generate_workload,
    percentile,
    run_placer,
)

#: The model's idle timeout of a hot process, seconds (Fn's default).
MODEL_IDLE_TIMEOUT = 30.0
BACKOFFS = ("fixed", "exponential", "release", "fifo")
#: The targets of issue 17: warm rate within this many points, attempts within this share.
WARM_POINTS = 5.0
ATTEMPTS_SHARE = 0.20


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    """One replay: the workload, its scale and the cluster.

    Attributes:
        seed: The workload's seed (and the simulator's back-off jitter's).
        model_duration: Seconds of arrivals in the model, before scaling.
        scale: Real seconds per model second (arrivals and durations are multiplied by it).
        functions: How many functions.
        runners: How many runners.
        runner_memory: Each runner's memory, MB.
        utilisation: Offered load over the runners' memory.
        placer: The placer's name.
        backoff: The placer's back-off mode.
    """

    seed: int = 1
    model_duration: float = 300.0
    scale: float = 0.4
    functions: int = 40
    runners: int = 3
    runner_memory: int = 1024
    utilisation: float = 0.5
    placer: str = "ch"
    backoff: str = "release"

    @property
    def idle_timeout(self) -> int:
        """The functions' idle timeout, real whole seconds (the functions file takes no less)."""
        return max(1, round(MODEL_IDLE_TIMEOUT * self.scale))

    def workload(self) -> Workload:
        """The model's workload, arrival times and durations scaled to real seconds."""
        model = generate_workload(
            self.seed,
            duration=self.model_duration,
            functions=self.functions,
            capacity_mb=self.runners * self.runner_memory,
            utilisation=self.utilisation,
        )
        arrivals = tuple(
            dataclasses.replace(
                arrival, time=arrival.time * self.scale, duration=arrival.duration * self.scale
            )
            for arrival in model.arrivals
        )
        return Workload(model.functions, arrivals)

    def placer_config(self) -> PlacerConfig:
        """The placer's configuration: Fn's defaults with this back-off."""
        return PlacerConfig(backoff=self.backoff)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Figures:
    """What one side measured.

    Attributes:
        calls: Calls sent.
        placed: Calls a runner took (real: answered 200).
        warm_rate: Warm starts over calls placed.
        attempts: Runners offered a call, mean over every call.
        calls_imbalance: The busiest runner's calls over the runners' mean.
        busy_imbalance: The busiest runner's summed call durations over the mean.
        queue_p50: Seconds from arrival to the function's start, median.
        queue_p99: The same, 99th percentile.
    """

    calls: int
    placed: int
    warm_rate: float
    attempts: float
    calls_imbalance: float
    busy_imbalance: float
    queue_p50: float
    queue_p99: float


def _imbalance(per_runner: dict[str, float], runners: int) -> float:
    mean = sum(per_runner.values()) / runners
    return max(per_runner.values(), default=0.0) / mean if mean > 0 else 0.0


def real_figures(run: ClusterRun, runners: int) -> Figures:
    """The real run's figures."""
    placed = [record for record in run.calls if record.status == 200]
    starts = sum(run.process_starts.values())
    calls = {runner: float(n) for runner, n in Counter(r.runner for r in placed).items()}
    busy: dict[str, float] = defaultdict(float)
    for record in placed:
        busy[record.runner] += record.duration
    queue = [record.started - record.sent for record in placed if record.started is not None]
    return Figures(
        calls=len(run.calls),
        placed=len(placed),
        warm_rate=max(0.0, 1.0 - starts / len(placed)) if placed else 0.0,
        attempts=run.attempts_sum / run.attempts_count if run.attempts_count else 0.0,
        calls_imbalance=_imbalance(calls, runners),
        busy_imbalance=_imbalance(busy, runners),
        queue_p50=percentile(queue, 50),
        queue_p99=percentile(queue, 99),
    )


def cold_start(run: ClusterRun) -> float:
    """The real cold start: a process's mean age at its first call, seconds.

    The mean, not the median: the simulator's cold start is one constant, and the memory a
    cold start holds meanwhile grows with its length, so the mean keeps the load the same.
    """
    ages = [
        record.age
        for record in run.calls
        if record.status == 200 and record.process_call == 1 and record.age is not None
    ]
    return statistics.fmean(ages) if ages else 0.0


class _RecordingRunner(SimRunner):
    """A simulated runner that keeps every call it is offered, for per-call figures."""

    def __init__(self, seen: dict[str, SimCall], *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._seen = seen

    async def try_exec(self, call: RunnerCall) -> None:
        """Note the call, then offer it to the simulated runner."""
        if isinstance(call, SimCall):
            self._seen[call.model.id] = call
        await super().try_exec(call)


def overhead(run: ClusterRun, cold: float) -> float:
    """Seconds a real runner held a call beyond its run, mean (0 if none measured).

    The runners' mean execution time, less the calls' mean duration and the cold starts'
    share of ``cold``.
    """
    placed = [record for record in run.calls if record.status == 200]
    if not placed or not run.execution:
        return 0.0
    cold_share = min(1.0, sum(run.process_starts.values()) / len(placed))
    mean_duration = statistics.fmean(record.duration for record in placed)
    return max(0.0, run.execution - mean_duration - cold_share * cold)


def sim_figures(
    settings: ReplaySettings,
    workload: Workload,
    cold: float,
    latency: float = 0.0,
    extra: float = 0.0,
) -> Figures:
    """Run the simulator on the same arrivals and cluster; return its figures.

    Args:
        settings: The replay.
        workload: Its workload, scaled.
        cold: The runners' cold start, seconds.
        latency: The round trip of an offer to a runner, seconds.
        extra: Seconds a call holds its runner beyond its run.
    """
    seen: dict[str, SimCall] = {}
    runners = [
        _RecordingRunner(
            seen,
            f"runner-{index}",
            settings.runner_memory,
            idle_timeout=float(settings.idle_timeout),
            cold_start=cold,
            latency=latency,
            overhead=extra,
        )
        for index in range(settings.runners)
    ]
    report = run_placer(
        settings.placer,
        workload.arrivals,
        runners,
        config=settings.placer_config(),
        seed=settings.seed,
    )
    placed = [call for call in seen.values() if call.committed_at is not None]
    calls = {runner: float(n) for runner, n in Counter(c.runner for c in placed).items()}
    busy: dict[str, float] = defaultdict(float)
    queue = []
    for call in placed:
        assert call.committed_at is not None
        busy[call.runner] += call.duration
        # The function starts after the cold start, and half the overhead (the request's way
        # to the process; the other half is the response's way back).
        start = call.committed_at + (0.0 if call.warm else cold) + extra / 2
        queue.append(start - call.arrival)
    return Figures(
        calls=report.calls,
        placed=report.placed,
        warm_rate=report.warm_rate,
        attempts=report.attempts_mean,
        calls_imbalance=_imbalance(calls, settings.runners),
        busy_imbalance=_imbalance(busy, settings.runners),
        queue_p50=percentile(queue, 50),
        queue_p99=percentile(queue, 99),
    )


@dataclass(frozen=True, slots=True)
class Comparison:
    """One replay's real and simulated figures.

    Attributes:
        settings: The replay.
        real: The real run's figures.
        sim: The simulator's, with the measured cold start and round trip.
        sim_instant: The simulator's with runners that answer at once and hold a call for
            its run only (round trip and overhead 0), as before the replay.
        cold_start: The real cold start the simulator was given, seconds.
        latency: The real round trip to a runner the simulator was given, seconds.
        overhead: The real time a runner held a call beyond its run, given too, seconds.
        seconds: The real run's length, seconds.
        errors: Real calls answered other than 200, by status (``None``: no answer).
    """

    settings: ReplaySettings
    real: Figures
    sim: Figures
    sim_instant: Figures
    cold_start: float
    latency: float
    overhead: float
    seconds: float
    errors: dict[int | None, int]

    @property
    def warm_ok(self) -> bool:
        """Whether the warm rates are within the target."""
        return abs(self.real.warm_rate - self.sim.warm_rate) * 100 <= WARM_POINTS

    @property
    def attempts_ok(self) -> bool:
        """Whether the attempts per call are within the target."""
        return abs(self.sim.attempts - self.real.attempts) <= ATTEMPTS_SHARE * self.real.attempts


def replay(
    settings: ReplaySettings, work: Path, wheelhouse: Path, keep: bool = False
) -> Comparison:
    """Run one replay: the real cluster, then the simulator with its measured cold start.

    With ``keep``, the real calls are written to ``work`` as JSON, one file per replay.
    """
    workload = settings.workload()
    run = run_cluster(
        work,
        workload.arrivals,
        workload.functions,
        runners=settings.runners,
        runner_memory=settings.runner_memory,
        placer=settings.placer,
        placer_config={"backoff": settings.backoff},
        idle_timeout=settings.idle_timeout,
        wheelhouse=wheelhouse,
        keep_metrics=keep,
    )
    cold = cold_start(run)
    if keep:
        name = f"calls-{settings.placer}-{settings.backoff}-{settings.seed}.json"
        records = [dataclasses.asdict(record) for record in run.calls]
        (work / name).write_text(json.dumps(records, indent=0))
    latency = statistics.median(run.round_trips) if run.round_trips else 0.0
    extra = overhead(run, cold)
    errors = Counter(record.status for record in run.calls if record.status != 200)
    return Comparison(
        settings,
        real_figures(run, settings.runners),
        sim_figures(settings, workload, cold, latency, extra),
        sim_figures(settings, workload, cold),
        cold,
        latency,
        extra,
        run.seconds,
        dict(errors),
    )


_HEADER = (
    f"{'placer':<9} {'backoff':<8} {'seed':>4} {'side':<5} {'calls':>5} {'placed':>6} "
    f"{'warm%':>6} {'att/call':>8} {'calls max/mean':>14} {'busy max/mean':>13} "
    f"{'q p50 ms':>8} {'q p99 ms':>8}"
)


def _row(comparison: Comparison, side: str, figures: Figures) -> str:
    settings = comparison.settings
    return (
        f"{settings.placer:<9} {settings.backoff:<8} {settings.seed:>4} {side:<5} "
        f"{figures.calls:>5} {figures.placed:>6} {100 * figures.warm_rate:>6.1f} "
        f"{figures.attempts:>8.2f} {figures.calls_imbalance:>14.2f} "
        f"{figures.busy_imbalance:>13.2f} {1000 * figures.queue_p50:>8.0f} "
        f"{1000 * figures.queue_p99:>8.0f}"
    )


def format_comparisons(comparisons: Sequence[Comparison]) -> str:
    """Return the table: a real and a sim row per replay, then the targets' verdicts."""
    lines = [_HEADER]
    for comparison in comparisons:
        lines.append(_row(comparison, "real", comparison.real))
        lines.append(_row(comparison, "sim", comparison.sim))
        lines.append(_row(comparison, "sim-0", comparison.sim_instant))
    lines.append("")
    for comparison in comparisons:
        settings = comparison.settings
        real, sim = comparison.real, comparison.sim
        warm = 100 * (sim.warm_rate - real.warm_rate)
        attempts = (sim.attempts / real.attempts - 1) * 100 if real.attempts else 0.0
        lines.append(
            f"{settings.placer} {settings.backoff} seed {settings.seed}: "
            f"warm sim-real {warm:+.1f} points ({'met' if comparison.warm_ok else 'MISSED'}, "
            f"target {WARM_POINTS:g}); attempts sim/real {attempts:+.0f}% "
            f"({'met' if comparison.attempts_ok else 'MISSED'}, target "
            f"{100 * ATTEMPTS_SHARE:.0f}%); cold start {1000 * comparison.cold_start:.0f} ms, "
            f"round trip {1000 * comparison.latency:.1f} ms, overhead "
            f"{1000 * comparison.overhead:.0f} ms; "
            f"real run {comparison.seconds:.0f} s; not 200: {comparison.errors or 'none'}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> list[Comparison]:
    """Run every placer on every seed, print the table; return the comparisons."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    defaults = ReplaySettings()
    parser.add_argument("--seeds", default="1", help="comma-separated workload seeds")
    parser.add_argument("--placers", default="ch,bounded", help="comma-separated placers")
    parser.add_argument("--backoff", default=defaults.backoff, choices=BACKOFFS)
    parser.add_argument("--model-duration", type=float, default=defaults.model_duration)
    parser.add_argument("--scale", type=float, default=defaults.scale)
    parser.add_argument("--functions", type=int, default=defaults.functions)
    parser.add_argument("--runners", type=int, default=defaults.runners)
    parser.add_argument("--runner-memory", type=int, default=defaults.runner_memory, help="MB")
    parser.add_argument("--utilisation", type=float, default=defaults.utilisation)
    parser.add_argument("--wheelhouse", type=Path, default=default_wheelhouse())
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="work in DIR and keep it: the logs, and each replay's calls as JSON",
    )
    args = parser.parse_args(argv)
    placers = args.placers.split(",")
    for placer in placers:
        if placer not in placer_names():
            parser.error(f"unknown placer {placer!r}; one of {', '.join(placer_names())}")
    if not any(args.wheelhouse.glob("fdk-*.whl")):
        parser.error(f"no fdk wheel in {args.wheelhouse}: run `make install`")
    comparisons = []
    with ExitStack() as stack:
        if args.keep is None:
            work = stack.enter_context(tempfile.TemporaryDirectory(prefix="rp-bench-replay-"))
        else:
            args.keep.mkdir(parents=True, exist_ok=True)
            work = str(args.keep)
        for seed in (int(seed) for seed in args.seeds.split(",")):
            for placer in placers:
                settings = ReplaySettings(
                    seed=seed,
                    model_duration=args.model_duration,
                    scale=args.scale,
                    functions=args.functions,
                    runners=args.runners,
                    runner_memory=args.runner_memory,
                    utilisation=args.utilisation,
                    placer=placer,
                    backoff=args.backoff,
                )
                comparisons.append(
                    replay(settings, Path(work), args.wheelhouse, args.keep is not None)
                )
                print(format_comparisons(comparisons[-1:]).splitlines()[-1], flush=True)
    print()
    print(
        f"{args.runners} runners x {args.runner_memory} MB, {args.functions} functions, "
        f"utilisation {args.utilisation}, {args.model_duration:g} model s x {args.scale} "
        f"(idle timeout {comparisons[0].settings.idle_timeout} s)"
    )
    print(format_comparisons(comparisons))
    return comparisons


if __name__ == "__main__":
    main()
