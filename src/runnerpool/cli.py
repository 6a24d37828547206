"""The ``runnerpool`` command: a thin click shell over the library's ``serve_*`` functions.

Options mirror Fn's environment variables (``FN_GRPC_PORT``, ``FN_MAX_REQUEST_SIZE``, ...).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import click

from ._config import _BACKOFF_MODES, BackoffMode, PlacerConfig
from ._dev import run_dev
from ._logging import configure_logging
from .fdk import Bundles, Environments, FdkExecutor
from .lb._registry import ConfigError, Registry
from .lb._serve import serve_lb
from .placers import PLACER_NAMES
from .pools import OutlierPolicy
from .rpc import GrpcRunner, Keepalive, client_tls, server_tls
from .runner import Capacity, Executor, Handler, InProcessExecutor, RunnerServer
from .runner._serve import serve_runner

__all__ = ["main"]

_MB = 1024 * 1024


def _load_functions(
    ctx: click.Context, param: click.Parameter, value: str
) -> Mapping[str, Handler]:
    module_name, _, attribute = value.partition(":")
    try:
        module = importlib.import_module(module_name)
        functions = getattr(module, attribute or "FUNCTIONS")
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot load {value!r}: {exc}") from None
    if not isinstance(functions, Mapping) or not functions:
        raise click.BadParameter(f"{value!r} is not a non-empty mapping of image to function")
    return functions


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    help="Log level of runnerpool's messages on stderr.",
)
@click.option(
    "--log-format",
    default="text",
    show_default=True,
    type=click.Choice(["text", "json"]),
    help="text: one readable line per message; json: one JSON object per line, with the "
    "call id, function id and runner address of call messages.",
)
@click.version_option(package_name="runnerpool")
def main(log_level: str, log_format: str) -> None:
    """Place serverless function calls on runners, the way Fn Project does."""
    configure_logging(log_level, log_format)


#: Where FDK functions' packages come from, for `runner` and for the runners `dev` starts.
_wheelhouse_option = click.option(
    "--wheelhouse",
    envvar="RUNNERPOOL_WHEELHOUSE",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Install the functions' packages (fdk, requirements.txt) from this directory of "
    "wheels; may be repeated [env RUNNERPOOL_WHEELHOUSE].",
)
_index_url_option = click.option(
    "--index-url",
    envvar="RUNNERPOOL_INDEX_URL",
    help="Install the functions' packages from this package index too. Without it, only "
    "the wheelhouse is used and nothing is downloaded [env RUNNERPOOL_INDEX_URL].",
)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    envvar="FN_GRPC_PORT",
    default=9190,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="gRPC port to listen on (0: any free port) [env FN_GRPC_PORT].",
)
@click.option(
    "--max-memory",
    envvar="FN_MAX_TOTAL_MEMORY_BYTES",
    type=click.IntRange(min=0),
    help="Memory, in bytes, that running calls may reserve; a call that does not fit now "
    "is refused at once with a 503 NACK [env FN_MAX_TOTAL_MEMORY_BYTES]. Default: no limit.",
)
@click.option(
    "--max-calls",
    type=click.IntRange(min=1),
    help="At most this many calls at once; more get the 503 NACK. Default: no cap.",
)
@click.option(
    "--max-request-size",
    envvar="FN_MAX_REQUEST_SIZE",
    type=click.IntRange(min=0),
    help="Largest request body accepted, in bytes (413 beyond) [env FN_MAX_REQUEST_SIZE].",
)
@click.option(
    "--max-response-size",
    envvar="FN_MAX_RESPONSE_SIZE",
    type=click.IntRange(min=0),
    help="Largest function response, in bytes (502 beyond) [env FN_MAX_RESPONSE_SIZE].",
)
@click.option(
    "--functions",
    default="runnerpool.examples:FUNCTIONS",
    show_default=True,
    callback=_load_functions,
    help="MODULE:ATTRIBUTE of a mapping from image name to async Python function, run "
    "in this process.",
)
@click.option(
    "--bundles",
    envvar="RUNNERPOOL_BUNDLES",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Run Fn FDK functions from this directory of function bundles (a call's image "
    "names a sub-directory holding func.py), as hot processes, instead of --functions "
    "[env RUNNERPOOL_BUNDLES].",
)
@_wheelhouse_option
@_index_url_option
@click.option(
    "--state-dir",
    envvar="RUNNERPOOL_STATE_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path.home() / ".cache" / "runnerpool",
    show_default=True,
    help="Where the functions' Python environments are kept between runs.",
)
@click.option(
    "--init-timeout",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a new function process may take to listen (then 504, as Fn).",
)
@click.option(
    "--tls-cert", type=click.Path(exists=True, dir_okay=False), help="TLS certificate (PEM)."
)
@click.option(
    "--tls-key", type=click.Path(exists=True, dir_okay=False), help="TLS private key (PEM)."
)
@click.option(
    "--tls-client-ca",
    type=click.Path(exists=True, dir_okay=False),
    help="Require clients to present a certificate signed by this CA (mutual TLS).",
)
@click.option(
    "--drain-timeout",
    type=click.FloatRange(min=0),
    help="On SIGTERM, seconds to let calls in flight finish before cancelling them. "
    "Default: wait for them.",
)
def runner(
    host: str,
    port: int,
    max_memory: int | None,
    max_calls: int | None,
    max_request_size: int | None,
    max_response_size: int | None,
    functions: Mapping[str, Handler],
    bundles: Path | None,
    wheelhouse: tuple[Path, ...],
    index_url: str | None,
    state_dir: Path,
    init_timeout: float,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
    drain_timeout: float | None,
) -> None:
    """Run a runner: admit or refuse calls from load balancers, and run them.

    On SIGINT or SIGTERM the runner drains: new calls are refused with the 503 NACK, so the
    load balancers place them elsewhere, and calls in flight finish.
    """
    if tls_client_ca and not tls_cert:
        raise click.UsageError("--tls-client-ca needs --tls-cert")
    ssl_context = (
        None if tls_cert is None else server_tls(tls_cert, tls_key, client_ca_file=tls_client_ca)
    )
    capacity = Capacity(
        memory_mb=None if max_memory is None else max_memory // _MB, max_calls=max_calls
    )

    def ready(server: RunnerServer) -> None:
        # One line on stdout, for whoever started the runner (tests and `runnerpool dev`).
        click.echo(f"runner listening on {server.address}")
        sys.stdout.flush()
        if isinstance(executor, FdkExecutor):
            executor.prepare_ahead()

    executor: Executor = (
        InProcessExecutor(functions)
        if bundles is None
        else FdkExecutor(
            Bundles(bundles),
            Environments(state_dir / "envs", find_links=wheelhouse, index_url=index_url),
            init_timeout=init_timeout,
            max_response_size=max_response_size,
        )
    )
    try:
        asyncio.run(
            serve_runner(
                executor,
                host=host,
                port=port,
                capacity=capacity,
                max_request_size=max_request_size,
                max_response_size=max_response_size,
                ssl=ssl_context,
                drain_timeout=drain_timeout,
                on_ready=ready,
                log_streamer=executor if isinstance(executor, FdkExecutor) else None,
            )
        )
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from None


@main.command()
@click.argument("address")
@click.option(
    "--tls-ca", type=click.Path(exists=True, dir_okay=False), help="CA of the runner's certificate."
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    help="Client certificate (mutual TLS).",
)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="Client private key.")
def status(address: str, tls_ca: str | None, tls_cert: str | None, tls_key: str | None) -> None:
    """Print the status of the runner at ADDRESS (host:port) as JSON."""
    ssl_context = (
        None if tls_ca is None else client_tls(tls_ca, cert_file=tls_cert, key_file=tls_key)
    )
    try:
        result = asyncio.run(_status(address, ssl_context))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="ADDRESS") from None
    except Exception as exc:
        raise click.ClickException(f"cannot get the status of {address}: {exc}") from None
    click.echo(json.dumps(result, indent=2, default=_json_default))


async def _status(address: str, ssl_context: Any) -> dict[str, Any]:
    runner = GrpcRunner(address, ssl=ssl_context)
    try:
        return dataclasses.asdict(await runner.status())
    finally:
        await runner.close()


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def _load_registry(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> Registry | None:
    if value is None:
        return None
    try:
        return Registry.load(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def _load_placer_config(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> PlacerConfig | None:
    if value is None:
        return None
    try:
        with open(value, encoding="utf-8") as file:
            return PlacerConfig.from_json(file.read())
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"{value}: {exc}") from None


def _split_addresses(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> list[str] | None:
    if value is None:
        return None
    # As Fn: split on commas, nothing trimmed or removed; an empty item is an error here.
    addresses = value.split(",")
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise click.BadParameter(f"{address!r} is not host:port")
    return addresses


#: Simulated call placements from which a run shows a progress bar on a terminal.
_LONG_RUN = 20_000


def _split_backoffs(ctx: click.Context, param: click.Parameter, value: str) -> list[BackoffMode]:
    modes = [mode.strip() for mode in value.split(",") if mode.strip()]
    unknown = [mode for mode in modes if mode not in _BACKOFF_MODES]
    if unknown or not modes:
        raise click.BadParameter(
            f"unknown back-off mode(s) {', '.join(unknown)}; use {', '.join(_BACKOFF_MODES)}"
        )
    return [cast("BackoffMode", mode) for mode in dict.fromkeys(modes)]


#: ``--bounded-load-factor``, shared by the commands that choose placers.
_factor_option = click.option(
    "--bounded-load-factor",
    type=click.FloatRange(min=1),
    default=None,
    help="c of the bounded placer: no runner takes more than ceil(c x average) of this LB's "
    "calls in flight while others have room. Default: the placer config's, else 1.25.",
)


def _lb_options(function: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--host", default="127.0.0.1", show_default=True, help="Address to listen on."
            ),
            click.option(
                "--port",
                envvar="FN_PORT",
                default=8080,
                show_default=True,
                type=click.IntRange(0, 65535),
                help="HTTP port of Fn's invoke API (0: any free port) [env FN_PORT].",
            ),
            click.option(
                "--placer",
                envvar="FN_PLACER",
                default="ch",
                show_default=True,
                type=click.Choice(list(PLACER_NAMES)),
                help="How calls choose runners [env FN_PLACER]: ch = consistent hashing (a "
                "function's calls go to the same runner first, where it is warm); ch-fn = the "
                "same with Fn's exact placement; naive = round robin; bounded = consistent "
                "hashing with bounded loads; rendezvous = rendezvous hashing, stable when any "
                "runner leaves; least-loaded = the less loaded of two preferred runners. Unlike "
                "Fn, an unknown value is an error rather than round robin.",
            ),
            click.option(
                "--placer-config",
                type=click.Path(exists=True, dir_okay=False),
                callback=_load_placer_config,
                help="JSON file with Fn's placer settings (retry_all_delay, placer_timeout, "
                'detached_placer_timeout; Go nanoseconds or "10ms") and runnerpool\'s '
                "(backoff, backoff_max_delay, release_hold, bounded_load_factor). "
                "Default: Fn's.",
            ),
            _factor_option,
            click.option(
                "--max-request-size",
                envvar="FN_MAX_REQUEST_SIZE",
                type=click.IntRange(min=0),
                help="Largest request body, in bytes: larger ones get 413 before any runner "
                "is tried [env FN_MAX_REQUEST_SIZE]. Default: no limit.",
            ),
            click.option(
                "--max-response-size",
                envvar="FN_MAX_RESPONSE_SIZE",
                type=click.IntRange(min=0),
                help="Largest function response, in bytes: larger ones get 502 [env "
                "FN_MAX_RESPONSE_SIZE]. Default: no limit.",
            ),
        ]
    ):
        function = option(function)
    return function


def _runner_health_options(function: Any) -> Any:
    """The options of the load balancer's connections to its runners and of ejection."""
    seconds = click.FloatRange(min=0, min_open=True)
    for option in reversed(
        [
            click.option(
                "--runner-connect-timeout",
                default=1.0,
                show_default=True,
                type=seconds,
                help="Seconds a connection to a runner may take, until the runner's first "
                "HTTP/2 frame; a runner not answering in time is skipped.",
            ),
            click.option(
                "--runner-keepalive",
                default=1.0,
                show_default=True,
                type=seconds,
                help="Seconds of silence on a runner connection after which a PING is sent.",
            ),
            click.option(
                "--runner-keepalive-timeout",
                default=3.0,
                show_default=True,
                type=seconds,
                help="Seconds a PING may go unanswered before the connection is declared dead: "
                "its calls end at once (500 if the runner had them, else placed elsewhere).",
            ),
            click.option(
                "--runner-connections",
                default=4,
                show_default=True,
                type=click.IntRange(min=1),
                help="Connections to each runner at most; a new one opens when the others "
                "carry as many calls as the runner allows per connection (100).",
            ),
            click.option(
                "--eject-after",
                default=2,
                show_default=True,
                type=click.IntRange(min=1),
                help="Consecutive failures (connect, dead connection, probe) that eject a runner.",
            ),
            click.option(
                "--ejection-time",
                default=1.0,
                show_default=True,
                type=seconds,
                help="Seconds before an ejected runner is probed; doubles with each ejection "
                "in a row.",
            ),
            click.option(
                "--max-ejection-time",
                default=10.0,
                show_default=True,
                type=seconds,
                help="The longest wait between probes of an ejected runner.",
            ),
            click.option(
                "--probe-interval",
                default=1.0,
                show_default=True,
                type=seconds,
                help="Seconds between health probes (the Status RPC) of a runner in rotation.",
            ),
            click.option(
                "--max-ejected-share",
                default=0.5,
                show_default=True,
                type=click.FloatRange(0, 1),
                help="Panic threshold: while more than this share of the runners is ejected, "
                "ejection is ignored.",
            ),
        ]
    ):
        function = option(function)
    return function


def _runner_health(options: Mapping[str, Any]) -> dict[str, Any]:
    """Return serve_lb's keepalive, connection and ejection arguments from the CLI options."""
    try:
        return {
            "keepalive": Keepalive(
                interval=options["runner_keepalive"],
                timeout=options["runner_keepalive_timeout"],
                connect_timeout=options["runner_connect_timeout"],
            ),
            "max_connections": options["runner_connections"],
            "outlier_policy": OutlierPolicy(
                eject_after=options["eject_after"],
                base_ejection=options["ejection_time"],
                max_ejection=options["max_ejection_time"],
                probe_interval=options["probe_interval"],
                max_ejected_share=options["max_ejected_share"],
            ),
        }
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@main.command()
@click.option(
    "--config",
    "registry",
    required=True,
    type=click.Path(dir_okay=False),
    callback=_load_registry,
    help="TOML file of the apps and functions that may be invoked.",
)
@click.option(
    "--runner-addresses",
    envvar="FN_RUNNER_ADDRESSES",
    required=True,
    callback=_split_addresses,
    help="Comma-separated host:port of the runners [env FN_RUNNER_ADDRESSES].",
)
@_lb_options
@click.option(
    "--runner-tls-ca",
    type=click.Path(exists=True, dir_okay=False),
    help="CA of the runners' certificates (TLS to the runners).",
)
@click.option(
    "--runner-tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    help="This LB's certificate (mutual TLS).",
)
@click.option(
    "--runner-tls-key", type=click.Path(exists=True, dir_okay=False), help="This LB's private key."
)
@_runner_health_options
def lb(
    registry: Registry,
    runner_addresses: list[str],
    host: str,
    port: int,
    placer: str,
    placer_config: PlacerConfig | None,
    bounded_load_factor: float | None,
    max_request_size: int | None,
    max_response_size: int | None,
    runner_tls_ca: str | None,
    runner_tls_cert: str | None,
    runner_tls_key: str | None,
    **runner_health: Any,
) -> None:
    """Run a load balancer: Fn's invoke API (POST /invoke/FN_ID), placing calls on runners.

    Also serves GET /health, GET /ready (503 while no runner is reachable) and GET /metrics
    (Prometheus). On SIGINT or SIGTERM it drains: new calls get 503, calls in flight finish,
    then it exits.
    """
    health = _runner_health(runner_health)
    if bounded_load_factor is not None:
        placer_config = dataclasses.replace(
            placer_config or PlacerConfig(), bounded_load_factor=bounded_load_factor
        )
    runner_ssl = (
        None
        if runner_tls_ca is None
        else client_tls(runner_tls_ca, cert_file=runner_tls_cert, key_file=runner_tls_key)
    )

    def ready(url: str) -> None:
        click.echo(f"load balancer listening on {url}")
        sys.stdout.flush()

    try:
        asyncio.run(
            serve_lb(
                registry,
                runner_addresses,
                placer=placer,
                placer_config=placer_config,
                host=host,
                port=port,
                max_request_size=max_request_size,
                max_response_size=max_response_size,
                runner_ssl=runner_ssl,
                on_ready=ready,
                **health,
            )
        )
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="The load balancer's address.")
@click.option(
    "--port",
    envvar="FN_PORT",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="The load balancer's HTTP port (0: any free port) [env FN_PORT].",
)
@click.option(
    "--runners", default=3, show_default=True, type=click.IntRange(1, 32), help="Runner processes."
)
@click.option(
    "--placer",
    envvar="FN_PLACER",
    default="ch",
    show_default=True,
    type=click.Choice(list(PLACER_NAMES)),
    help="How calls choose runners [env FN_PLACER].",
)
@click.option(
    "--bundles",
    envvar="RUNNERPOOL_BUNDLES",
    default="examples",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The directory of Fn FDK function bundles the runners serve [env RUNNERPOOL_BUNDLES].",
)
@_wheelhouse_option
@_index_url_option
@click.option(
    "--in-process",
    is_flag=True,
    help="Serve the in-process Python examples (runnerpool.examples) instead of FDK bundles.",
)
def dev(
    host: str,
    port: int,
    runners: int,
    placer: str,
    bundles: Path,
    wheelhouse: tuple[Path, ...],
    index_url: str | None,
    in_process: bool,
) -> None:
    """Try runnerpool: a load balancer and runners on this machine, serving example functions.

    The runners run the example Fn FDK functions of ``examples/`` as hot processes. Prints
    the URL and a curl line to paste; Ctrl-C stops everything it started.
    """
    runner_args: list[str] = []
    if not in_process:
        if not bundles.is_dir():
            raise click.UsageError(
                f"no function bundles at {bundles}: run from the repository's top directory, "
                "pass --bundles DIR, or use --in-process"
            )
        runner_args += ["--bundles", str(bundles.resolve())]
        for path in wheelhouse:
            runner_args += ["--wheelhouse", str(path.resolve())]
        if index_url:
            runner_args += ["--index-url", index_url]
    try:
        asyncio.run(
            run_dev(
                host=host,
                port=port,
                runners=runners,
                placer=placer,
                echo=click.echo,
                runner_args=runner_args,
            )
        )
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from None
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--seed", default=1, show_default=True, type=int, help="The workload's seed.")
@click.option(
    "--duration", default=300.0, show_default=True, type=click.FloatRange(min=1), help="Seconds."
)
@click.option("--runners", default=8, show_default=True, type=click.IntRange(2, 256))
@click.option(
    "--runner-memory", default=8192, show_default=True, type=click.IntRange(1024), help="MB."
)
@click.option("--functions", default=200, show_default=True, type=click.IntRange(1))
@click.option(
    "--placers",
    default="ch,naive,rendezvous,bounded,least-loaded",
    show_default=True,
    help="Comma-separated placer names.",
)
@click.option(
    "--utilisation", default=0.7, show_default=True, type=click.FloatRange(min=0, min_open=True)
)
@click.option(
    "--backoff",
    default="fixed",
    show_default=True,
    callback=_split_backoffs,
    help="Comma-separated back-off modes, each run with every placer: fixed (Fn's 10 ms), "
    "exponential (full jitter, 1 s cap), release (exponential, woken by releases, passing "
    "over runners that refused).",
)
@click.option(
    "--release-hold",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds the release mode passes over a refusing runner with no release.",
)
@_factor_option
@click.option(
    "--plots",
    type=click.Path(file_okay=False),
    default=None,
    help="Write PNG plots to this directory (needs matplotlib: pip install runnerpool[sim]).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on stderr. Default: when stderr is a terminal and the run "
    f"places at least {_LONG_RUN:,} calls.",
)
def simulate(
    seed: int,
    duration: float,
    runners: int,
    runner_memory: int,
    functions: int,
    placers: str,
    utilisation: float,
    backoff: list[BackoffMode],
    release_hold: float,
    bounded_load_factor: float | None,
    plots: str | None,
    progress: bool | None,
) -> None:
    """Simulate the placers on a synthetic Azure-like workload, in virtual time.

    Deterministic for a seed. Prints a table per placer and back-off mode: calls, 503s,
    warm-start %, attempts per call (mean, p99), queueing delay (p50, p99), peak in-flight
    on a runner, the busiest runner's mean in-flight over the runners' mean, and the % of
    functions whose first runner moved when the middle runner left.
    """
    from pathlib import Path

    from .sim import SimulationSettings, format_table, write_plots
    from .sim import simulate as run_simulation

    names = [name.strip() for name in placers.split(",") if name.strip()]
    unknown = [name for name in names if name not in PLACER_NAMES]
    if unknown or not names:
        raise click.BadParameter(
            f"unknown placer(s) {', '.join(unknown)}; use {', '.join(PLACER_NAMES)}",
            param_hint="--placers",
        )
    settings = SimulationSettings(
        seed=seed,
        duration=duration,
        runners=runners,
        runner_memory=runner_memory,
        functions=functions,
        utilisation=utilisation,
        backoff=backoff[0],
        release_hold=release_hold,
        bounded_load_factor=1.25 if bounded_load_factor is None else bounded_load_factor,
    )
    total = len(settings.workload().arrivals) * len(names) * len(backoff)
    if progress is None:
        progress = total >= _LONG_RUN and sys.stderr.isatty()
    if progress:
        with click.progressbar(length=total, label="simulating", file=sys.stderr) as bar:
            reports = run_simulation(settings, names, progress=bar.update, backoffs=backoff)
    else:
        reports = run_simulation(settings, names, backoffs=backoff)
    click.echo(format_table(reports))
    if plots is not None:
        written = write_plots(
            reports,
            Path(plots),
            title=f"seed {seed}, {duration:g} s, {utilisation:.0%} utilisation, "
            f"{runners} runners x {runner_memory} MB",
        )
        if written is None:
            raise click.ClickException(
                "matplotlib is not installed: pip install runnerpool[sim] to write plots"
            )
        click.echo(f"wrote {len(written)} plots to {plots}", err=True)
