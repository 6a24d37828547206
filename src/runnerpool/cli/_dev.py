"""``runnerpool dev``: a load balancer and runners on this machine, serving your functions."""

from __future__ import annotations

from pathlib import Path

import click

from .._dev import DEFAULT_RUNNERS, dev_functions, run_dev
from ..lb import ConfigError, EdgeLimits, LBSettings
from ._group import log_settings, main
from ._options import (
    LB_DEFAULTS,
    access_log_option,
    edge_options,
    index_url_option,
    listen_options,
    placer_option,
    serve,
    wheelhouse_option,
)

__all__ = ["dev"]


@main.command()
@listen_options(
    port=LB_DEFAULTS.port,
    envvar="FN_PORT",
    port_help="The load balancer's HTTP port",
    host_help="The load balancer's address.",
)
@click.option(
    "--runners", default=DEFAULT_RUNNERS, type=click.IntRange(1, 32), help="Runner processes."
)
@placer_option
@click.option(
    "--bundles",
    envvar="RUNNERPOOL_BUNDLES",
    type=click.Path(file_okay=False, path_type=Path),
    help="Serve your functions: each folder of DIR holding func.py (or func.yaml) is a "
    "function of the app 'dev', named and sized by its func.yaml. Edits are served from the "
    "next call on. Default: the examples of ./examples [env RUNNERPOOL_BUNDLES].",
)
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Serve the functions of this functions file (the format of `runnerpool lb "
    "--config`), their images being bundles of --bundles (default ./examples). Re-read "
    "when it changes.",
)
@wheelhouse_option
@index_url_option
@click.option(
    "--in-process",
    is_flag=True,
    help="Serve the in-process Python examples (runnerpool.examples) instead of FDK bundles.",
)
@click.option(
    "--no-sandbox",
    is_flag=True,
    help="Run the function processes without their sandbox (see `runnerpool runner --help`).",
)
@edge_options
@access_log_option
@click.pass_context
def dev(
    ctx: click.Context,
    host: str,
    port: int,
    runners: int,
    placer: str,
    bundles: Path | None,
    config: Path | None,
    wheelhouse: tuple[Path, ...],
    index_url: str | None,
    in_process: bool,
    no_sandbox: bool,
    edge: EdgeLimits,
    drain_timeout: float,
    access_log: bool,
) -> None:
    """Try runnerpool or develop functions: a load balancer and runners on this machine.

    The runners run Fn FDK functions as hot processes: your bundles (--bundles DIR, or a
    --config file), else the examples of ``examples/``. Prints the URL and a curl line per
    function; Ctrl-C stops everything it started.
    """
    examples = bundles is None and config is None
    # The runners' stderr is this process's: the same format.
    runner_args = ["--log-format", log_settings(ctx).format]
    root: Path | None = None
    if in_process:
        if not examples:
            raise click.UsageError("--in-process serves the built-in examples only")
    else:
        root = Path("examples") if bundles is None else bundles
        if not root.is_dir():
            raise click.UsageError(
                f"no function bundles at {root}: run from the repository's top directory, "
                "pass --bundles DIR, or use --in-process"
            )
        root = root.resolve()
        runner_args += ["--bundles", str(root)]
        for path in wheelhouse:
            runner_args += ["--wheelhouse", str(path.resolve())]
        if index_url:
            runner_args += ["--index-url", index_url]
        if no_sandbox:
            runner_args.append("--no-sandbox")
    try:
        functions = dev_functions(root, config, examples=examples)
    except ConfigError as exc:
        hint = "--config" if config is not None else "--bundles"
        raise click.BadParameter(str(exc), param_hint=hint) from None
    settings = LBSettings(
        host=host,
        port=port,
        placer=placer,
        edge=edge,
        drain_timeout=drain_timeout,
        access_log=access_log,
    )
    try:
        serve(
            run_dev(
                functions=functions,
                bundles=root,
                config=config,
                examples=examples,
                runners=runners,
                settings=settings,
                echo=click.echo,
                runner_args=runner_args,
            ),
            host,
            port,
        )
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
