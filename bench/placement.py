"""Placement benchmark: the cost of ``place_call`` against a bare loop over ``try_exec``.

Runs with 100 in-memory runners, for both core placers without metrics and with metrics
registered under three sets of tag keys (none, ``fn_id``, ``fn_id,runner``), and for the
placers beyond Fn (rendezvous, bounded load, least loaded) without metrics:

* ``first accepts``: the first runner tried takes the call;
* ``3 NACKs``: three runners refuse (503) before one takes it.

The floor is the same work without a placer: a loop that calls ``try_exec`` on the same
runners until one accepts. A second table gives nanoseconds per key for the hash and start
index. Every figure is the best of several repeats, each measured in this same run, so the
ratios hold on a noisy shared machine. Run: ``make bench`` (or ``python -m bench.placement``).

``--tracing`` adds a table of ``CHPlacer`` with tracing off, on but sampled out (ratio 0) and
on at 100%, interleaved, each against the off case (needs the ``otel`` extra). With tracing on,
each placement runs under a span of its call, as the front end makes one. At 100% every span
is encoded as OTLP protobuf (and dropped) synchronously, on the placing thread: an upper bound
of the CPU a span costs, since a batch exporter encodes spans in batches.
``--baseline REV`` also measures, interleaved with today's, ``CHPlacer`` as it was at git
revision REV: that revision's ``placers/_base.py`` and ``placers/_tracker.py`` read with
``git show`` into a temporary package, and its runners raising the NACK as ``RunnerBusyError``
was built before issue 16 (through ``super().__init__``), with a floor of its own. Times are CPU
time (``process_time``), so that being descheduled on a loaded machine does not count.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import importlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from runnerpool import (
    BoundedLoadPlacer,
    Call,
    CHPlacer,
    LeastLoadedPlacer,
    NaivePlacer,
    NotPlacedError,
    Placer,
    PlacerConfig,
    RendezvousPlacer,
    RunnerBusyError,
    RunnerStatus,
    _tracing,
    metrics,
)
from runnerpool._metric_tags import TagPlan
from runnerpool.placers._hashing import fn_key_hash
from runnerpool.testing import FakeCall

if TYPE_CHECKING:
    from runnerpool.tracing import TracingHooks

RUNNERS = 100
FN = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
ROOT = Path(__file__).resolve().parents[1]
LATENCY_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 10000, 60000, 120000)
#: The metric tags measured: none (Fn's default), the function, the function and the runner.
TAG_KEY_SETS: tuple[tuple[str, ...], ...] = ((), ("fn_id",), ("fn_id", "runner"))


class _Script:
    """Shared by all runners of a pool: refuse ``nacks`` times, accept once, repeat."""

    __slots__ = ("left", "nacks")

    def __init__(self, nacks: int) -> None:
        self.nacks = nacks
        self.left = nacks


class _BaselineBusy(RunnerBusyError):
    """The NACK as it was built before issue 16: through ``super().__init__``."""

    def __init__(self, message: str = "Timed out - server too busy") -> None:
        super(RunnerBusyError, self).__init__(message)


class _MemoryRunner:
    """An in-memory runner that costs as little as a runner can."""

    __slots__ = ("address", "nack", "script")

    def __init__(
        self, address: str, script: _Script, nack: type[RunnerBusyError] = RunnerBusyError
    ) -> None:
        self.address = address
        self.script = script
        self.nack = nack

    async def try_exec(self, call: object) -> None:
        script = self.script
        if script.left:
            script.left -= 1
            raise self.nack
        script.left = script.nacks

    async def status(self) -> RunnerStatus:
        return RunnerStatus()

    async def aclose(self) -> None:
        return None


class _Pool:
    __slots__ = ("_runners",)

    def __init__(self, runners: Sequence[_MemoryRunner]) -> None:
        self._runners = runners

    async def runners(self, call: object) -> Sequence[_MemoryRunner]:
        return self._runners

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True)
class Row:
    """One benchmark result."""

    case: str
    micros: float
    floor: float

    @property
    def ratio(self) -> float:
        """Time per call over the floor's."""
        return self.micros / self.floor


async def _interleaved_best(
    cases: Sequence[tuple[str, Callable[[], Awaitable[None]]]],
    iterations: int,
    repeats: int,
    setups: Mapping[str, Callable[[], object]] | None = None,
    *,
    cpu: bool = False,
) -> dict[str, float]:
    """Best time per iteration of each case, in microseconds.

    Every repeat runs every case once, one after the other, so that a slow moment of this
    shared machine hits all cases alike instead of whichever case ran then. One untimed
    round comes first, to warm up caches and the CPU's clock. ``setups`` run, untimed, before
    their case each time (the metric views are global: each case registers its own).
    """
    best = {name: float("inf") for name, _ in cases}
    clock = time.perf_counter_ns if not cpu else time.process_time_ns
    for round_ in range(repeats + 1):
        for name, body in cases if round_ % 2 else cases[::-1]:
            if setups is not None and name in setups:
                setups[name]()
            gc.collect()
            start = clock()
            for _ in range(iterations):
                await body()
            if round_:
                best[name] = min(best[name], (clock() - start) / iterations / 1000)
    return best


async def placement_rows(iterations: int, repeats: int) -> list[Row]:
    """Measure place_call for both placers, with and without metrics, and the floor."""
    rows: list[Row] = []
    call = FakeCall(Call(fn_id="01ARZ3NDEKTSV4RRFFQ69G5FAV", type="sync"))
    for nacks, label in ((0, "first accepts"), (3, "3 NACKs")):
        script = _Script(nacks)
        # A tuple, as StaticRunnerPool gives: the rendezvous placers know it by identity.
        runners = tuple(_MemoryRunner(f"10.0.0.{i}:9190", script) for i in range(RUNNERS))
        pool = _Pool(runners)

        async def floor(runners: Sequence[_MemoryRunner] = runners) -> None:
            for runner in runners:
                try:
                    await runner.try_exec(call)
                    return
                except NotPlacedError:
                    continue

        def placing(placer: Placer, pool: _Pool = pool) -> Callable[[], Awaitable[None]]:
            async def place() -> None:
                await placer.place_call(pool, call)

            return place

        placers = (("CHPlacer", CHPlacer()), ("NaivePlacer", NaivePlacer()))
        # The placers beyond Fn are measured without metrics only, against CHPlacer's rows.
        beyond = (
            ("RendezvousPlacer", RendezvousPlacer()),
            ("BoundedLoadPlacer", BoundedLoadPlacer()),
            ("LeastLoadedPlacer", LeastLoadedPlacer()),
            # The release back-off's bookkeeping (a mark per NACK, a release per call); a
            # zero hold keeps the NACKing runners in every pass, so the work compares.
            ("CHPlacer release", CHPlacer(PlacerConfig(backoff="release", release_hold=0.0))),
        )
        best = await _interleaved_best(
            [("floor", floor)] + [(f"{n}, {label}", placing(p)) for n, p in placers + beyond],
            iterations,
            repeats,
        )
        for name, micros in best.items():
            if name != "floor":
                rows.append(Row(name, micros, best["floor"]))
        # The tag key sets interleaved in one group: each case registers its views first.
        cases: list[tuple[str, Callable[[], Awaitable[None]]]] = [("floor", floor)]
        setups: dict[str, Callable[[], object]] = {"floor": metrics.unregister_placer_views}
        for keys in TAG_KEY_SETS:
            for n, p in placers:
                name = f"{n}, {label}, metrics [{','.join(keys)}]"
                cases.append((name, placing(p)))
                setups[name] = functools.partial(
                    metrics.register_placer_views, keys, LATENCY_BUCKETS
                )
        best_metrics = await _interleaved_best(cases, iterations, repeats, setups)
        metrics.unregister_placer_views()
        for name, micros in best_metrics.items():
            if name != "floor":
                rows.append(Row(name, micros, best_metrics["floor"]))
    return rows


#: The tracing settings ``--tracing`` compares: the sampler ratio, or ``None`` for off.
TRACING_CASES: tuple[tuple[str, float | None], ...] = (
    ("off", None),
    ("sampled out (ratio 0)", 0.0),
    ("100%", 1.0),
)


def _tracing_hooks(ratio: float) -> tuple[TracingHooks, Callable[[], None]]:
    """Hooks whose spans are sampled at ``ratio``, then encoded as OTLP and dropped."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
    from opentelemetry.sdk.trace.export import (
        SimpleSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    from runnerpool.tracing import TracingHooks as Hooks

    class Encoding(SpanExporter):
        """Does an OTLP exporter's CPU work (protobuf encoding), without the network."""

        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            encode_spans(spans).SerializeToString()
            return SpanExportResult.SUCCESS

    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(SimpleSpanProcessor(Encoding()))
    return Hooks(provider.get_tracer("bench")), provider.shutdown


async def tracing_rows(iterations: int, repeats: int) -> list[Row]:
    """Measure CHPlacer with tracing off, sampled out and at 100%; the floor is "off"."""
    rows: list[Row] = []
    stops = []
    hooks: dict[str, TracingHooks | None] = {}
    for name, ratio in TRACING_CASES:
        if ratio is None:
            hooks[name] = None
        else:
            hooks[name], stop = _tracing_hooks(ratio)
            stops.append(stop)
    try:
        for nacks, label in ((0, "first accepts"), (3, "3 NACKs")):
            script = _Script(nacks)
            runners = tuple(_MemoryRunner(f"10.0.0.{i}:9190", script) for i in range(RUNNERS))
            pool, placer = _Pool(runners), CHPlacer()

            def placing(
                trace: TracingHooks | None, pool: _Pool = pool, placer: CHPlacer = placer
            ) -> Callable[[], Awaitable[None]]:
                async def place() -> None:
                    # Every case sets the switch, off too: the assignment costs them all alike.
                    _tracing.active = trace
                    # A fresh call each time: the trace headers go into its model.
                    call = FakeCall(Call(fn_id=FN, type="sync"))
                    if trace is None:
                        await placer.place_call(pool, call)
                        return
                    # The front end's span of the call, the attempts' parent (TraceRequests).
                    with trace.tracer.start_as_current_span("POST /invoke/{fn_id}"):
                        await placer.place_call(pool, call)

                return place

            best = await _interleaved_best(
                [(name, placing(trace)) for name, trace in hooks.items()], iterations, repeats
            )
            off = best[TRACING_CASES[0][0]]
            rows += [Row(f"CHPlacer, {label}, tracing {n}", us, off) for n, us in best.items()]
    finally:
        _tracing.active = None
        for stop in stops:
            stop()
    return rows


def load_baseline(rev: str, into: Path) -> ModuleType | None:
    """The placement loop of git revision ``rev`` as a module, or ``None`` (said) without git."""
    package = into / "runnerpool_baseline_placers"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("_base.py", "_tracker.py"):
        shown = subprocess.run(
            ["git", "show", f"{rev}:src/runnerpool/placers/{name}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        if shown.returncode != 0:
            print(f"baseline unavailable ({rev}: {shown.stderr.strip()}); today's code only")
            return None
        # Its own tracker; everything else from today's package (unchanged by issue 16).
        text = shown.stdout.replace("from ._tracker import", "from ._tracker_baseline import")
        text = text.replace("from .._", "from runnerpool._").replace(
            "from ._", "from runnerpool.placers._"
        )
        text = text.replace("from runnerpool.placers._tracker_baseline", "from ._tracker")
        text = text.replace("from .. import", "from runnerpool import")
        (package / name).write_text(text)
    sys.path.insert(0, str(into))
    return importlib.import_module("runnerpool_baseline_placers._base")


async def baseline_rows(base: ModuleType, iterations: int, repeats: int) -> list[Row]:
    """CHPlacer today against CHPlacer at the baseline, each over its own NACK and floor."""

    class BaselineCH(base.BasePlacer):  # type: ignore[name-defined,misc]
        start_index = CHPlacer.start_index

        def __init__(self) -> None:
            super().__init__()
            self._jump = CHPlacer()._jump

    rows: list[Row] = []
    call = FakeCall(Call(fn_id="01ARZ3NDEKTSV4RRFFQ69G5FAV", type="sync"))
    for nacks, label in ((0, "first accepts"), (3, "3 NACKs")):
        cases: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        for who, placer, nack in (
            ("today", CHPlacer(), RunnerBusyError),
            ("baseline", BaselineCH(), _BaselineBusy),
        ):
            script = _Script(nacks)
            runners = tuple(_MemoryRunner(f"10.0.0.{i}:9190", script, nack) for i in range(RUNNERS))
            pool = _Pool(runners)

            async def floor(runners: Sequence[_MemoryRunner] = runners) -> None:
                for runner in runners:
                    try:
                        await runner.try_exec(call)
                        return
                    except NotPlacedError:
                        continue

            async def place(placer: Placer = placer, pool: _Pool = pool) -> None:
                await placer.place_call(pool, call)

            cases += [(f"floor {who}", floor), (who, place)]
        best = await _interleaved_best(cases, iterations, repeats, cpu=True)
        for who in ("today", "baseline"):
            rows.append(Row(f"CHPlacer {who}, {label}", best[who], best[f"floor {who}"]))
    return rows


def hash_rows(keys: int, repeats: int) -> list[tuple[str, float]]:
    """Nanoseconds per key: the placers' start index, its parts, and an empty loop.

    Each function id is hashed from scratch: nothing is cached between keys.
    """
    calls = [FakeCall(Call(fn_id=f"01ARZ3NDEKTSV4RR{i:010d}")) for i in range(keys)]
    canonical, fn_exact = CHPlacer(), CHPlacer(variant="fn")
    rendezvous = RendezvousPlacer()
    membership = rendezvous.membership(
        tuple(_MemoryRunner(f"10.0.0.{i}:9190", _Script(0)) for i in range(RUNNERS))
    )
    cases: list[tuple[str, Callable[[FakeCall], object]]] = [
        ("loop floor (call a no-op)", lambda call: None),
        ("siphash of the fn_id", lambda call: fn_key_hash(call.model.fn_id)),
        (
            "CHPlacer.start_index, canonical (default)",
            lambda call: canonical.start_index(call, RUNNERS),
        ),
        ("CHPlacer.start_index, variant='fn'", lambda call: fn_exact.start_index(call, RUNNERS)),
        # What a rendezvous placer pays once per function and membership (then it is cached).
        ("rendezvous top 4, uncached", lambda call: membership.top(call.model.fn_id)),
    ]
    best = {name: float("inf") for name, _ in cases}
    for _ in range(repeats):
        for name, body in cases:
            start = time.perf_counter_ns()
            for call in calls:
                body(call)
            best[name] = min(best[name], (time.perf_counter_ns() - start) / keys)
    return list(best.items())


def tag_rows(count: int, repeats: int) -> list[tuple[str, float]]:
    """Nanoseconds to find a placement's tag values: once for the call, once for an attempt.

    Interleaved per repeat, as the placements are; the first row (no tag keys) is the base.
    """
    model = Call(fn_id="01ARZ3NDEKTSV4RRFFQ69G5FAV", app_id="01ARZ3NDEKTSV4RRFFQ69G5FAW")
    plans = [
        (f"[{','.join(keys)}]", TagPlan(keys))
        for keys in (*TAG_KEY_SETS, ("fn_id", "app_id", "runner"))
    ]
    best = {name: float("inf") for name, _ in plans}
    loop = range(count)
    for _ in range(repeats):
        for name, plan in plans:
            call_tags, runner_tags = plan.call_tags, plan.runner_tags
            start = time.perf_counter_ns()
            for _ in loop:
                runner_tags(call_tags(model), "10.0.0.7:9190")
            best[name] = min(best[name], (time.perf_counter_ns() - start) / count)
    return list(best.items())


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000, help="placements per repeat")
    parser.add_argument("--repeats", type=int, default=7, help="repeats; the best is kept")
    parser.add_argument(
        "--tracing", action="store_true", help="add tracing off / sampled out / 100%%"
    )
    parser.add_argument(
        "--baseline", metavar="REV", help="also CHPlacer at git revision REV (CPU time)"
    )
    parser.add_argument("--skip-main", action="store_true", help="only the baseline comparison")
    args = parser.parse_args(argv)
    if args.baseline:
        with tempfile.TemporaryDirectory(prefix="runnerpool-placers-") as tmp:
            base = load_baseline(args.baseline, Path(tmp))
            if base is not None:
                compared = asyncio.run(baseline_rows(base, args.iterations, args.repeats))
                print(f"CHPlacer today against {args.baseline} (CPU time, interleaved)")
                print(f"{'case':<40} {'µs/call':>9} {'floor µs':>9} {'ratio':>7}")
                for row in compared:
                    print(f"{row.case:<40} {row.micros:>9.2f} {row.floor:>9.2f} {row.ratio:>7.2f}")
                for first, second in zip(compared[::2], compared[1::2], strict=True):
                    print(
                        f"  {first.case}: {first.micros / second.micros:.2f}x the baseline's time"
                    )
                print()
        if args.skip_main:
            return

    rows = asyncio.run(placement_rows(args.iterations, args.repeats))
    print(
        f"place_call with {RUNNERS} in-memory runners (best of {args.repeats} x {args.iterations})"
    )
    print(f"{'case':<52} {'µs/call':>9} {'floor µs':>9} {'ratio':>7}")
    for row in rows:
        print(f"{row.case:<52} {row.micros:>9.2f} {row.floor:>9.2f} {row.ratio:>7.2f}")
    print()
    print(f"hash + start index over {RUNNERS} runners, 10 000 distinct function ids")
    print(f"{'case':<42} {'ns/key':>7} {'ratio':>7}")
    hashes = hash_rows(10_000, args.repeats)
    loop_floor = hashes[0][1]
    for name, nanos in hashes:
        print(f"{name:<42} {nanos:>7.0f} {nanos / loop_floor:>7.2f}")
    print()
    print("metric tag values of a placement and one attempt (call_tags + runner_tags)")
    print(f"{'tag keys':<42} {'ns':>7} {'ratio':>7}")
    tags = tag_rows(100_000, args.repeats)
    for name, nanos in tags:
        print(f"{name:<42} {nanos:>7.0f} {nanos / tags[0][1]:>7.2f}")
    if args.tracing:
        print()
        print("tracing: place_call with a fresh call each time; ratio against tracing off")
        print(f"{'case':<48} {'µs/call':>9} {'off µs':>9} {'ratio':>7}")
        for row in asyncio.run(tracing_rows(args.iterations, args.repeats)):
            print(f"{row.case:<48} {row.micros:>9.2f} {row.floor:>9.2f} {row.ratio:>7.2f}")


if __name__ == "__main__":
    main()
