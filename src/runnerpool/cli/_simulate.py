"""``runnerpool simulate``: the placers on a synthetic workload, in virtual time."""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import sys
from pathlib import Path
from typing import cast, get_args

import click

from .. import BackoffMode
from .._logging import json_mode
from ..placers import placer_names
from ..sim import SimulationSettings, format_table, write_plots
from ..sim import simulate as run_simulation
from ._group import main
from ._options import factor_option, split_names

__all__ = ["simulate"]

logger = logging.getLogger("runnerpool.cli")

#: Simulated call placements from which a run shows a progress bar on a terminal.
_LONG_RUN = 20_000
_SIM = SimulationSettings()

#: runnerpool is installed from its repository, not an index: name the package itself.
_NO_MATPLOTLIB = (
    "matplotlib is not installed: pip install matplotlib (or, in a clone of runnerpool, "
    "pip install '.[sim]') to write plots"
)


def _split_backoffs(ctx: click.Context, param: click.Parameter, value: str) -> list[BackoffMode]:
    modes = split_names(value, get_args(BackoffMode), "back-off mode")
    return [cast("BackoffMode", mode) for mode in dict.fromkeys(modes)]


def _split_placers(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    return split_names(value, placer_names(), "placer")


@main.command()
@click.option("--seed", default=_SIM.seed, type=int, help="The workload's seed.")
@click.option("--duration", default=_SIM.duration, type=click.FloatRange(min=1), help="Seconds.")
@click.option("--runners", default=_SIM.runners, type=click.IntRange(2, 256))
@click.option("--runner-memory", default=_SIM.runner_memory, type=click.IntRange(1024), help="MB.")
@click.option("--functions", default=_SIM.functions, type=click.IntRange(1))
@click.option(
    "--placers",
    default="ch,naive,rendezvous,bounded,least-loaded",
    callback=_split_placers,
    help="Comma-separated placer names.",
)
@click.option(
    "--utilisation",
    default=_SIM.utilisation,
    type=click.FloatRange(min=0, min_open=True),
)
@click.option(
    "--backoff",
    default=_SIM.backoff,
    callback=_split_backoffs,
    help="Comma-separated back-off modes, each run with every placer: fixed (Fn's 10 ms), "
    "exponential (full jitter, 1 s cap), release (exponential, woken by releases, passing "
    "over runners that refused), fifo (as release, but waiting calls keep their arrival "
    "order in a bounded queue, and calls it cannot serve in time get their 503 at once).",
)
@click.option(
    "--release-hold",
    default=_SIM.release_hold,
    type=click.FloatRange(min=0),
    help="Seconds the release mode passes over a refusing runner with no release.",
)
@click.option(
    "--placer-timeout",
    default=_SIM.placer_timeout,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a placer searches for a runner for a call (Fn's 360): the call's deadline "
    "for its 503.",
)
@click.option(
    "--lbs",
    default=_SIM.lbs,
    type=click.IntRange(1, 64),
    help="Load balancers placing the workload, each with its own placer state; calls go to "
    "them round robin.",
)
@factor_option
@click.option(
    "--plots",
    type=click.Path(file_okay=False),
    default=None,
    help="Write PNG plots to this directory (needs matplotlib: pip install matplotlib).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on stderr. Default: when stderr is a terminal, the log format "
    f"is text and the run places at least {_LONG_RUN:,} calls.",
)
def simulate(
    seed: int,
    duration: float,
    runners: int,
    runner_memory: int,
    functions: int,
    placers: list[str],
    utilisation: float,
    backoff: list[BackoffMode],
    release_hold: float,
    placer_timeout: float,
    lbs: int,
    bounded_load_factor: float | None,
    plots: str | None,
    progress: bool | None,
) -> None:
    """Simulate the placers on a synthetic Azure-like workload, in virtual time.

    Deterministic for a seed. Prints a table per placer and back-off mode: load balancers,
    calls, 503s, % of calls shed before their deadline, 503s later than it, warm-start %,
    attempts per call (mean, p99), queueing delay (p50, p99), peak in-flight on a runner, the
    busiest runner's mean in-flight over the runners' mean, and the % of functions whose
    first runner moved when the middle runner left.
    """
    # Before simulating, not after: a long run should not end in "cannot plot".
    if plots is not None and importlib.util.find_spec("matplotlib") is None:
        raise click.ClickException(_NO_MATPLOTLIB)
    settings = SimulationSettings(
        seed=seed,
        duration=duration,
        runners=runners,
        runner_memory=runner_memory,
        functions=functions,
        utilisation=utilisation,
        backoff=backoff[0],
        release_hold=release_hold,
        placer_timeout=placer_timeout,
        lbs=lbs,
    )
    if bounded_load_factor is not None:
        settings = dataclasses.replace(settings, bounded_load_factor=bounded_load_factor)
    total = len(settings.workload().arrivals) * len(placers) * len(backoff)
    if progress is None:
        # A progress bar is no JSON line.
        progress = total >= _LONG_RUN and sys.stderr.isatty() and not json_mode()
    if progress:
        with click.progressbar(length=total, label="simulating", file=sys.stderr) as bar:
            reports = run_simulation(settings, placers, progress=bar.update, backoffs=backoff)
    else:
        reports = run_simulation(settings, placers, backoffs=backoff)
    click.echo(format_table(reports))
    if plots is not None:
        written = write_plots(
            reports,
            Path(plots),
            title=f"seed {seed}, {duration:g} s, {utilisation:.0%} utilisation, "
            f"{runners} runners x {runner_memory} MB",
        )
        if written is None:
            raise click.ClickException(_NO_MATPLOTLIB)
        if json_mode():
            logger.info("Wrote %d plots to %s", len(written), plots)
        else:
            click.echo(f"wrote {len(written)} plots to {plots}", err=True)
