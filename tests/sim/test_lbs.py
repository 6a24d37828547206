"""Several load balancers in the simulator: each its own placer state, deterministic for a seed."""

from __future__ import annotations

from dataclasses import replace

import pytest
from click.testing import CliRunner

from runnerpool.cli import main
from runnerpool.sim import Arrival, SimRunner, SimulationSettings, run_placer, simulate

SMALL = SimulationSettings(
    seed=5, duration=20, runners=4, runner_memory=2048, functions=30, utilisation=0.9
)


def test_each_load_balancer_keeps_its_own_round_robin() -> None:
    """Two round-robin LBs each start at the first runner: calls 0 and 1 land on one runner."""
    arrivals = [Arrival(float(n), f"f{n}", 128, 10.0) for n in range(4)]
    for lbs, expected in [(1, [1, 1, 1, 1]), (2, [2, 2, 0, 0])]:
        runners = [SimRunner(f"r{i}", 1024) for i in range(4)]
        report = run_placer("naive", arrivals, runners, lbs=lbs)
        assert report.lbs == lbs
        assert [runner.cold_starts for runner in runners] == expected


@pytest.mark.parametrize("name", ["bounded", "least-loaded"])
def test_several_lbs_are_deterministic_for_a_seed(name: str) -> None:
    """The same settings with four LBs give the same report twice, and differ from one LB."""
    settings = replace(SMALL, lbs=4, backoff="release")
    first, second = simulate(settings, [name]), simulate(settings, [name])
    assert first == second
    (one,) = simulate(replace(SMALL, backoff="release"), [name])
    assert first[0].calls == one.calls
    assert first[0] != one


def test_lbs_below_one_is_refused() -> None:
    """Zero load balancers is a clear error."""
    with pytest.raises(ValueError, match="lbs must be at least 1"):
        run_placer("ch", [], [SimRunner("r", 1024)], lbs=0)


def test_cli_simulate_runs_fifo_through_several_lbs() -> None:
    """``--backoff fifo --lbs 2 --placer-timeout`` run, and the table names the LBs and sheds."""
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--seed",
            "3",
            "--duration",
            "5",
            "--runners",
            "3",
            "--functions",
            "10",
            "--placers",
            "bounded",
            "--backoff",
            "release,fifo",
            "--lbs",
            "2",
            "--placer-timeout",
            "5",
        ],
    )
    assert result.exit_code == 0, result.output
    header, *rows = result.stdout.splitlines()
    assert "lbs" in header.split()
    assert "shed%" in header.split()
    assert [row.split()[1] for row in rows] == ["release", "fifo"]
    assert all(row.split()[3] == "2" for row in rows)
