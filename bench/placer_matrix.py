"""Every placer across seeds, utilisations and load-balancer counts, in the simulator (issue 17).

For each utilisation and number of load balancers ``k``, runs every placer on the same
workloads (one per seed) and prints, per placer: the warm-start rate (worst seed and mean),
max/mean in flight (worst seed), homes moved when the middle runner leaves, attempts per
call (mean over seeds) and queueing p99 (worst seed). The baseline of each group is ``ch``
(jump-hash consistent hashing, the default) measured in the same run: ``warm - ch`` is the
worst seed's difference in points. A last table lists, per placer, whether it met the
issue's targets for the default on every seed, utilisation and ``k``: warm rate at least
``ch``'s, max/mean at most 1.3, homes moved at most 1/n + 1%.

Run: ``python -m bench.placer_matrix`` (see ``--help``; the defaults take a few minutes with
two processes).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from runnerpool.placers import placer_names
from runnerpool.sim import PlacerReport, SimulationSettings, simulate


@dataclass(frozen=True, slots=True)
class Cell:
    """One simulation: every placer on one seed, utilisation and load-balancer count."""

    seed: int
    utilisation: float
    lbs: int


def _run(cell: Cell, duration: float, placers: Sequence[str], backoff: str) -> list[PlacerReport]:
    settings = SimulationSettings(
        seed=cell.seed,
        duration=duration,
        utilisation=cell.utilisation,
        lbs=cell.lbs,
        backoff=backoff,  # type: ignore[arg-type]
    )
    return simulate(settings, placers)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the matrix and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3,4,5", help="comma-separated seeds")
    parser.add_argument("--utilisations", default="0.5,0.7,0.9")
    parser.add_argument("--lbs", default="1,2,4", help="load-balancer counts")
    parser.add_argument("--duration", type=float, default=60.0, help="virtual seconds")
    parser.add_argument("--backoff", default="release")
    parser.add_argument("--placers", default=",".join(p for p in placer_names() if p != "ch-fn"))
    parser.add_argument("--jobs", type=int, default=2, help="processes")
    args = parser.parse_args(argv)
    seeds = [int(seed) for seed in args.seeds.split(",")]
    utilisations = [float(u) for u in args.utilisations.split(",")]
    lb_counts = [int(k) for k in args.lbs.split(",")]
    placers = [name for name in args.placers.split(",") if name]
    if "ch" not in placers:
        placers.insert(0, "ch")
    cells = [Cell(s, u, k) for u, k, s in itertools.product(utilisations, lb_counts, seeds)]
    with ProcessPoolExecutor(args.jobs) as pool:
        runs = pool.map(
            _run,
            cells,
            itertools.repeat(args.duration),
            itertools.repeat(placers),
            itertools.repeat(args.backoff),
        )
        results = dict(zip(cells, runs, strict=True))
    runners = SimulationSettings().runners
    moved_target = 1 / runners + 0.01
    met = {name: True for name in placers}
    print(
        f"{len(seeds)} seeds ({args.seeds}), {args.duration:g} s each, back-off {args.backoff}, "
        f"{runners} runners; worst = the worst seed"
    )
    header = (
        f"{'util':>4}  {'k':>1}  {'placer':<12}  {'warm% min':>9}  {'mean':>5}  "
        f"{'warm - ch':>9}  {'max/mean':>8}  {'moved%':>6}  {'att/call':>8}  {'q p99 ms':>8}"
    )
    print(header)
    for utilisation, lbs in itertools.product(utilisations, lb_counts):
        group = [results[Cell(seed, utilisation, lbs)] for seed in seeds]
        by_placer = {name: [run[i] for run in group] for i, name in enumerate(placers)}
        baseline = by_placer["ch"]
        for name, reports in by_placer.items():
            warm = [r.warm_rate for r in reports]
            gap = min(r.warm_rate - b.warm_rate for r, b in zip(reports, baseline, strict=True))
            imbalance = max(r.load_imbalance for r in reports)
            moved = max(r.homes_moved for r in reports)
            attempts = statistics.fmean(r.attempts_mean for r in reports)
            queue = max(r.queue_p99 for r in reports)
            if gap < 0 or imbalance > 1.3 or moved > moved_target:
                met[name] = False
            print(
                f"{utilisation:>4.1f}  {lbs:>1}  {name:<12}  {100 * min(warm):>9.1f}  "
                f"{100 * statistics.fmean(warm):>5.1f}  {100 * gap:>+9.1f}  {imbalance:>8.2f}  "
                f"{100 * moved:>6.1f}  {attempts:>8.2f}  {1000 * queue:>8.0f}"
            )
    print()
    print("met every target of the default (warm >= ch, max/mean <= 1.3, moved <= 1/n + 1%):")
    for name in placers:
        print(f"  {name:<12} {'yes' if met[name] else 'no'}")


if __name__ == "__main__":
    main()
