"""The simulator: virtual clock, hand-checked scenarios, workload shape, determinism, CLI."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import statistics
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from runnerpool import PlacerConfig
from runnerpool.cli import main
from runnerpool.placers import placer_names
from runnerpool.placers._hashing import FN_SIPHASH_KEY, c_jump_hash, siphash
from runnerpool.sim import (
    Arrival,
    SimRunner,
    SimulationSettings,
    burr,
    format_table,
    generate_workload,
    homes_moved,
    percentile,
    run_placer,
    run_virtual,
    simulate,
    virtual_runtime,
    write_plots,
)
from runnerpool.sim._simulate import PLOTS, first_runner


def test_virtual_sleep_takes_no_real_time() -> None:
    async def sleeper() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(100)
        return loop.time() - start

    started = time.perf_counter()
    elapsed, end = run_virtual(sleeper())
    assert elapsed == pytest.approx(100)
    assert end == pytest.approx(100)
    assert time.perf_counter() - started < 1.0


def test_tracker_reads_the_virtual_clock() -> None:
    from runnerpool import PlacerConfig
    from runnerpool.placers._tracker import PlacerTracker
    from runnerpool.testing import FakeCall

    async def expiry() -> tuple[bool, bool]:
        runtime = virtual_runtime(asyncio.get_running_loop())
        tracker = PlacerTracker(PlacerConfig(placer_timeout=50), FakeCall(), runtime=runtime)
        await asyncio.sleep(42)
        before = tracker.placer_expired()
        await asyncio.sleep(10)
        return before, tracker.placer_expired()

    assert run_virtual(expiry())[0] == (False, True)


def test_virtual_loop_reports_a_deadlock() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    with pytest.raises(RuntimeError, match="deadlocked"):
        run_virtual(forever())


def _home(fn_id: str, count: int) -> int:
    return int(c_jump_hash(siphash(FN_SIPHASH_KEY, fn_id.encode()), count))


def test_hand_checked_scenario_warm_starts_and_expiry() -> None:
    # Runners of 128 MB take one 128 MB call each. CH sends "f" to its home first.
    runners = [SimRunner(f"r{i}", 128, idle_timeout=30, cold_start=0.5) for i in range(2)]
    home = _home("f", 2)
    arrivals = [
        Arrival(0.0, "f", 128, 1.0),  # home, cold: runs 0 -> 1.5
        Arrival(0.0, "f", 128, 1.0),  # home busy (1 attempt), the other runner, cold
        Arrival(10.0, "f", 128, 1.0),  # home's instance idle since 1.5: warm, runs 10 -> 11
        Arrival(100.0, "f", 128, 1.0),  # home's instance idle since 11, expired at 41: cold
    ]
    report = run_placer("ch", arrivals, runners)
    assert report.calls == report.placed == 4
    assert report.rejected == 0
    assert report.warm_rate == 1 / 4
    assert report.attempts_mean == (1 + 2 + 1 + 1) / 4
    assert report.queue_p99 == 0.0
    assert report.peak_in_flight == 1
    assert runners[home].attempts == 4
    assert runners[1 - home].attempts == 1
    assert (runners[home].warm_starts, runners[home].cold_starts) == (1, 2)
    assert (runners[1 - home].warm_starts, runners[1 - home].cold_starts) == (0, 1)
    assert runners[home].busy == 1
    # In flight over time: home 1.5 + 1 + 1.5 s, other 1.5 s, over the 101.5 s run.
    assert runners[home].in_flight_area(101.5) == pytest.approx(4.0)
    assert report.load_imbalance == pytest.approx(4.0 / ((4.0 + 1.5) / 2))


def test_hand_checked_scenario_queueing_with_fixed_backoff() -> None:
    runners = [SimRunner(f"r{i}", 128, idle_timeout=30, cold_start=0.5) for i in range(2)]
    arrivals = [Arrival(0.0, "f", 128, 1.005) for _ in range(3)]
    report = run_placer("ch", arrivals, runners)
    # The third call fails passes at 0, 0.01, ..., 1.50 (151 passes of 2 attempts); both
    # runners free at 1.505; the pass at 1.51 finds the home with an idle instance: warm.
    assert report.placed == 3
    assert report.attempts_mean == pytest.approx((1 + 2 + 151 * 2 + 1) / 3)
    assert report.attempts_p99 == 151 * 2 + 1
    assert report.warm_rate == pytest.approx(1 / 3)
    assert report.queue_p50 == 0.0
    assert report.queue_p99 == pytest.approx(1.51)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
    assert percentile([], 50) == 0.0


def test_burr_median_matches_the_formula() -> None:
    rng = random.Random(7)
    c, k, scale = 11.652, 0.221, 107.083
    draws = [burr(rng, c, k, scale) for _ in range(20_000)]
    expected = scale * (2 ** (1 / k) - 1) ** (1 / c)
    assert statistics.median(draws) == pytest.approx(expected, rel=0.03)


def test_workload_scales_to_the_utilisation_and_timers_are_periodic() -> None:
    workload = generate_workload(3, duration=200, functions=50, capacity_mb=10_000, utilisation=0.5)
    offered = sum(fn.rate * fn.mean_duration * fn.memory for fn in workload.functions)
    assert offered == pytest.approx(5_000)
    times = [a.time for a in workload.arrivals]
    assert times == sorted(times)
    assert all(0 <= t < 200 for t in times)
    for fn in workload.functions:
        if fn.trigger == "timer" and fn.rate * 200 >= 3:
            own = [a.time for a in workload.arrivals if a.fn_id == fn.fn_id]
            gaps = [b - a for a, b in itertools.pairwise(own)]
            assert gaps == pytest.approx([1 / fn.rate] * len(gaps))
    assert workload == generate_workload(
        3, duration=200, functions=50, capacity_mb=10_000, utilisation=0.5
    )


def test_homes_moved_matches_independent_counts() -> None:
    runners = [SimRunner(f"runner-{i:02d}", 1024) for i in range(6)]
    fn_ids = [f"fn-{i}" for i in range(300)]
    after = runners[:3] + runners[4:]
    # CH: the jump hash of the function over each list, computed here.
    moved = sum(runners[_home(fn, 6)].address != after[_home(fn, 5)].address for fn in fn_ids)
    assert homes_moved("ch", fn_ids, runners) == moved / len(fn_ids)
    # Rendezvous: exactly the functions whose home was the removed runner move.
    from runnerpool.placers import RendezvousPlacer

    on_removed = sum(first_runner(RendezvousPlacer(), fn, runners) == "runner-03" for fn in fn_ids)
    assert homes_moved("rendezvous", fn_ids, runners) == on_removed / len(fn_ids)
    assert 0 < on_removed < len(fn_ids) / 3


SMALL = SimulationSettings(seed=5, duration=30, runners=4, runner_memory=4096, functions=40)


def test_same_seed_same_report() -> None:
    assert simulate(SMALL, ["ch", "bounded"]) == simulate(SMALL, ["ch", "bounded"])


def test_exponential_backoff_is_deterministic() -> None:
    settings = SimulationSettings(
        seed=2,
        duration=20,
        runners=3,
        runner_memory=2048,
        functions=30,
        utilisation=1.2,
        backoff="exponential",
    )
    assert simulate(settings, ["naive"]) == simulate(settings, ["naive"])


@pytest.mark.parametrize("name", placer_names())
def test_each_placer_runs_through_the_simulator(name: str) -> None:
    workload = SMALL.workload()
    runners = SMALL.make_runners()
    report = run_placer(name, workload.arrivals, runners, horizon=SMALL.duration)
    assert report.calls == len(workload.arrivals) > 100
    assert report.placed == report.calls
    assert sum(r.warm_starts + r.cold_starts for r in runners) == report.placed
    assert sum(r.attempts for r in runners) == pytest.approx(report.attempts_mean * report.calls)
    warm = sum(r.warm_starts for r in runners)
    assert report.warm_rate == pytest.approx(warm / report.placed)
    assert all(r.in_flight == 0 and r.running_memory == 0 for r in runners)
    assert report.peak_in_flight == max(r.max_in_flight for r in runners)
    assert math.isfinite(report.load_imbalance)
    assert report.load_imbalance >= 1.0


def test_full_run_is_ordered_as_expected() -> None:
    settings = SimulationSettings(seed=1, duration=60)
    reports = {r.placer: r for r in simulate(settings, ["ch", "naive", "bounded"])}
    assert reports["ch"].warm_rate > reports["naive"].warm_rate
    assert reports["bounded"].peak_in_flight < reports["ch"].peak_in_flight
    table = format_table(list(reports.values()))
    assert table.splitlines()[0].startswith("placer")
    assert len(table.splitlines()) == 4


def test_cli_simulate_prints_a_table(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--seed",
            "3",
            "--duration",
            "10",
            "--runners",
            "3",
            "--functions",
            "20",
            "--placers",
            "ch,naive",
            "--plots",
            str(tmp_path / "plots"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "warm%" in result.output
    assert "ch " in result.output
    assert "naive" in result.output
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(
        f"{stem}.png" for stem, *_ in PLOTS
    )


def test_cli_simulate_rejects_unknown_placers() -> None:
    result = CliRunner().invoke(main, ["simulate", "--placers", "ch,nope"])
    assert result.exit_code != 0
    assert "nope" in result.output


def test_hand_checked_scenario_queueing_with_release_backoff() -> None:
    """The fixed back-off's scenario above, with the release mode: 2 attempts, not 303.

    The third call passes over the home (held: it refused the second call), is refused by
    the other runner, and waits without trying anyone until the first calls end at 1.505 s;
    the release wakes it and it starts warm where it was released.
    """
    runners = [SimRunner(f"r{i}", 128, idle_timeout=30, cold_start=0.5) for i in range(2)]
    arrivals = [Arrival(0.0, "f", 128, 1.005) for _ in range(3)]
    config = PlacerConfig(backoff="release", release_hold=10.0)
    report = run_placer("ch", arrivals, runners, config=config, seed=1)
    assert report.backoff == "release"
    assert report.placed == 3
    assert report.attempts_mean == pytest.approx((1 + 2 + 2) / 3)
    assert report.attempts_p99 == 2
    assert report.warm_rate == pytest.approx(1 / 3)
    assert report.queue_p99 == pytest.approx(1.505)
    assert sum(r.busy for r in runners) == 2


OVERLOADED = SimulationSettings(
    seed=2, duration=20, runners=3, runner_memory=2048, functions=30, utilisation=1.2
)


def test_one_run_compares_back_off_modes_on_the_same_workload() -> None:
    """Each back-off mode runs every placer on the same calls; release tries far fewer runners."""
    reports = simulate(OVERLOADED, ["ch", "naive"], backoffs=["fixed", "release"])
    assert [(r.placer, r.backoff) for r in reports] == [
        ("ch", "fixed"),
        ("naive", "fixed"),
        ("ch", "release"),
        ("naive", "release"),
    ]
    assert len({r.calls for r in reports}) == 1
    by = {(r.placer, r.backoff): r for r in reports}
    for name in ("ch", "naive"):
        assert by[name, "fixed"].attempts_mean > 20
        assert by[name, "release"].attempts_mean < by[name, "fixed"].attempts_mean / 5


def test_release_mode_reports_match_the_runners_own_counts() -> None:
    """Under overload, the release mode's report agrees with what the runners counted."""
    workload = OVERLOADED.workload()
    runners = OVERLOADED.make_runners()
    report = run_placer(
        "bounded",
        workload.arrivals,
        runners,
        config=OVERLOADED.placer_config("release"),
        seed=2,
        horizon=OVERLOADED.duration,
    )
    assert report.placed + report.rejected == report.calls == len(workload.arrivals)
    assert sum(r.attempts for r in runners) == pytest.approx(report.attempts_mean * report.calls)
    assert sum(r.warm_starts + r.cold_starts for r in runners) == report.placed
    assert sum(r.attempts - r.busy for r in runners) == report.placed
    assert all(r.in_flight == 0 and r.running_memory == 0 for r in runners)


def test_write_plots_writes_small_pngs(tmp_path: Path) -> None:
    """One PNG per plotted metric, each a real PNG of a few tens of kB at most."""
    reports = simulate(SMALL, ["ch", "naive"], backoffs=["fixed", "release"])
    written = write_plots(reports, tmp_path / "plots", title="small")
    assert written is not None
    assert sorted(p.name for p in written) == sorted(f"{stem}.png" for stem, *_ in PLOTS)
    for path in written:
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert 2_000 < len(data) < 60_000


def test_write_plots_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without matplotlib no plot is written, and the CLI says how to get it before simulating."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert write_plots(simulate(SMALL, ["ch"]), tmp_path) is None
    result = CliRunner().invoke(
        main, ["simulate", "--duration", "5", "--runners", "2", "--plots", str(tmp_path)]
    )
    assert result.exit_code == 1
    assert "pip install matplotlib" in result.stderr
    assert result.stdout == ""  # nothing was simulated


TINY = ["simulate", "--seed", "3", "--duration", "5", "--runners", "3", "--functions", "10"]


def test_cli_progress_bar_only_when_asked_or_on_a_long_run_at_a_terminal() -> None:
    """--progress draws the bar on stderr; by default a run off a terminal draws none."""
    shown = CliRunner().invoke(main, [*TINY, "--placers", "ch", "--progress"])
    assert shown.exit_code == 0, shown.output
    assert "simulating" in shown.stderr
    assert "simulating" not in shown.stdout
    hidden = CliRunner().invoke(main, [*TINY, "--placers", "ch"])
    assert hidden.exit_code == 0, hidden.output
    assert hidden.stderr == ""
    assert hidden.stdout == shown.stdout


def test_cli_simulate_back_offs_and_factor() -> None:
    """--backoff takes several modes; --bounded-load-factor and --release-hold reach the placers."""
    result = CliRunner().invoke(
        main,
        [
            *TINY,
            "--placers",
            "bounded",
            "--backoff",
            "fixed,release",
            "--bounded-load-factor",
            "1.5",
            "--release-hold",
            "0.5",
        ],
    )
    assert result.exit_code == 0, result.output
    rows = result.stdout.splitlines()[1:]
    assert [row.split()[:2] for row in rows] == [["bounded", "fixed"], ["bounded", "release"]]
    bad = CliRunner().invoke(main, [*TINY, "--backoff", "fixed,poll"])
    assert bad.exit_code == 2
    assert "poll" in bad.output
    low = CliRunner().invoke(main, [*TINY, "--bounded-load-factor", "0.5"])
    assert low.exit_code == 2
