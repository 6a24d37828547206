"""The ``runnerpool`` command: a thin click shell over the library's ``serve_*`` functions.

Options mirror Fn's environment variables (``FN_GRPC_PORT``, ``FN_MAX_REQUEST_SIZE``, ...).
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import ipaddress
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import click
import stamina.instrumentation
from click.core import ParameterSource
from grpclib.exceptions import GRPCError

from ._config import _BACKOFF_MODES, BackoffMode, PlacerConfig
from ._dev import dev_functions, run_dev
from ._logging import (
    FUNCTION_LOGGER,
    LOG_FORMATS,
    LOG_LEVELS,
    announce,
    configure_logging,
    json_mode,
)
from ._logs_command import print_logs
from .fdk import Bundles, Environments, FdkExecutor
from .fdk._cgroups import default_memory_mb
from .fdk._sandbox import Sandbox, host_sandbox
from .lb._api_source import ApiSource, ApiSourceSettings, api_base_url, log_retry
from .lb._limits import DEFAULT_DRAIN_TIMEOUT, DEFAULT_MAX_REQUEST_SIZE, EdgeLimits
from .lb._live import LiveRegistry
from .lb._registry import ConfigError, Registry
from .lb._serve import serve_lb
from .lb._workers import WorkerContext, default_workers, run_workers
from .placers import PLACER_NAMES
from .pools import OutlierPolicy
from .rpc import GrpcRunner, Keepalive, client_tls, server_tls
from .runner import Capacity, Executor, Handler, InProcessExecutor, RunnerServer
from .runner._serve import serve_runner

__all__ = ["main"]

logger = logging.getLogger("runnerpool.cli")

_MB = 1024 * 1024

logger = logging.getLogger(__name__)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _sandbox(no_sandbox: bool) -> tuple[Sandbox | None, str]:
    """Make the functions' sandbox, or say loudly why there is none."""
    if no_sandbox:
        logger.warning("--no-sandbox: function processes run as plain processes of this runner")
        return None, "off (--no-sandbox)"
    return host_sandbox()


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


# -- Global options: --log-level and --log-format, before or after the subcommand ---------------


@dataclass
class _LogSettings:
    level: str = "info"
    format: str = "text"


def _set_log_option(ctx: click.Context, param: click.Parameter, value: str) -> None:
    """Apply a log option at once, so that later errors already have the chosen format.

    The group's value comes from its command line, ``FN_LOG_*`` or the default; a
    subcommand's replaces it only when given on the subcommand's command line.
    """
    assert param.name is not None
    if (
        ctx.parent is not None
        and ctx.get_parameter_source(param.name) != ParameterSource.COMMANDLINE
    ):
        return
    settings = ctx.find_root().meta.setdefault("runnerpool.log", _LogSettings())
    setattr(settings, param.name.removeprefix("log_"), value.lower())
    configure_logging(settings.level, settings.format)


def _log_options() -> list[click.Option]:
    """The global options: the group has them, and every subcommand a copy."""
    return [
        click.Option(
            ["--log-level"],
            envvar="FN_LOG_LEVEL",
            default="info",
            show_default=True,
            type=click.Choice(list(LOG_LEVELS), case_sensitive=False),
            is_eager=True,
            expose_value=False,
            callback=_set_log_option,
            help="Level of runnerpool's messages on stderr (Fn's level names; other "
            "libraries' messages from warning up) [env FN_LOG_LEVEL].",
        ),
        click.Option(
            ["--log-format"],
            envvar="FN_LOG_FORMAT",
            default="text",
            show_default=True,
            type=click.Choice(list(LOG_FORMATS), case_sensitive=False),
            is_eager=True,
            expose_value=False,
            callback=_set_log_option,
            help="text: one readable line per message; json: every line on stderr (and the "
            "ready line on stdout) is a JSON object, with the call id, function id and "
            "runner address of call messages [env FN_LOG_FORMAT].",
        ),
    ]


class _Command(click.Command):
    """A subcommand that takes the global options after its name too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(_log_options())


class _Group(click.Group):
    """The ``runnerpool`` group: global options, and errors in the log format."""

    command_class = _Command

    def invoke(self, ctx: click.Context) -> Any:
        """Run the subcommand; in JSON mode, Ctrl-C is an abort without click's blank line."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            if not json_mode():
                raise
            raise click.Abort from None

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        """Run the command line; in JSON mode, report an error as a JSON log line."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        # The process ends here: as a log line, the reason is shown at any level.
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except click.ClickException as exc:
            if not json_mode():
                exc.show()
            else:
                logger.critical("%s", exc.format_message())
            sys.exit(exc.exit_code)
        except click.Abort:
            if not json_mode():
                click.echo("Aborted!", err=True)
            else:
                logger.critical("Aborted")
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="runnerpool")
def main() -> None:
    """Place serverless function calls on runners, the way Fn Project does."""


main.params.extend(_log_options())


#: The load balancer's access log, for `lb` and for `dev`.
_access_log_option = click.option(
    "--access-log/--no-access-log",
    envvar="FN_ACCESS_LOG",
    default=True,
    show_default=True,
    help="Log a line per call: method, path, status, duration, call id, function id, runner, "
    "attempts (logger runnerpool.access, at any --log-level; uvicorn's own access log stays "
    "off) [env FN_ACCESS_LOG].",
)

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
    "is refused at once with a 503 NACK [env FN_MAX_TOTAL_MEMORY_BYTES]. Default: the "
    "memory of the host (or of its cgroup) less Fn's headroom (10%, 256 MB to 5 GB).",
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
@click.option(
    "--function-logs/--no-function-logs",
    envvar="RUNNERPOOL_FUNCTION_LOGS",
    default=True,
    show_default=True,
    help="Log each line the functions write (stdout, stderr) at INFO on the "
    "runnerpool.function logger, with its call, function and app ids, whatever --log-level "
    "says [env RUNNERPOOL_FUNCTION_LOGS].",
)
@click.option(
    "--no-sandbox",
    is_flag=True,
    help="Run function processes without their sandbox (namespaces, a uid per app, cgroup "
    "limits): they can then read and signal each other and the runner.",
)
@click.option(
    "--insecure",
    is_flag=True,
    help="Allow serving on an address other than loopback without TLS: anyone who reaches "
    "it can run calls.",
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
    function_logs: bool,
    no_sandbox: bool,
    insecure: bool,
) -> None:
    """Run a runner: admit or refuse calls from load balancers, and run them.

    On SIGINT or SIGTERM the runner drains: new calls are refused with the 503 NACK, so the
    load balancers place them elsewhere, and calls in flight finish.
    """
    if tls_client_ca and not tls_cert:
        raise click.UsageError("--tls-client-ca needs --tls-cert")
    if not function_logs:
        logging.getLogger(FUNCTION_LOGGER).setLevel(logging.CRITICAL + 1)
    if not _loopback(host) and tls_cert is None:
        if not insecure:
            raise click.UsageError(
                f"serving on {host} without TLS lets anyone who reaches it run calls: pass "
                "--tls-cert/--tls-key, or --insecure to accept that"
            )
        logger.warning("Serving on %s without TLS (--insecure): anyone can run calls", host)
    ssl_context = (
        None if tls_cert is None else server_tls(tls_cert, tls_key, client_ca_file=tls_client_ca)
    )
    capacity = Capacity(
        memory_mb=default_memory_mb() if max_memory is None else max_memory // _MB,
        max_calls=max_calls,
    )

    def ready(server: RunnerServer) -> None:
        # One line on stdout, for whoever started the runner (tests and `runnerpool dev`).
        announce(f"runner listening on {server.address}", address=server.address)
        if isinstance(executor, FdkExecutor):
            executor.prepare_ahead()

    executor: Executor
    if bundles is None:
        executor = InProcessExecutor(functions)
    else:
        sandbox, state = _sandbox(no_sandbox)
        executor = FdkExecutor(
            Bundles(bundles),
            Environments(state_dir / "envs", find_links=wheelhouse, index_url=index_url),
            init_timeout=init_timeout,
            max_response_size=max_response_size,
            sandbox=sandbox,
            sandbox_state=state,
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
        await runner.aclose()


@main.command()
@click.argument("address")
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep printing new lines as the functions write them, until interrupted.",
)
@click.option(
    "--tls-ca", type=click.Path(exists=True, dir_okay=False), help="CA of the runner's certificate."
)
@click.option(
    "--tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    help="Client certificate (mutual TLS).",
)
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), help="Client private key.")
def logs(
    address: str, follow: bool, tls_ca: str | None, tls_cert: str | None, tls_key: str | None
) -> None:
    """Print the function output the runner at ADDRESS (host:port) holds, from StreamLogs.

    One line per line a function wrote: time, app, function, call id, stream and the line.
    Without --follow, prints what the runner holds now and exits.
    """
    ssl_context = (
        None if tls_ca is None else client_tls(tls_ca, cert_file=tls_cert, key_file=tls_key)
    )
    try:
        asyncio.run(print_logs(address, follow=follow, ssl=ssl_context, echo=click.echo))
    except KeyboardInterrupt:
        pass
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="ADDRESS") from None
    except GRPCError as exc:
        raise click.ClickException(f"cannot read the logs of {address}: {exc.message}") from None
    except Exception as exc:
        raise click.ClickException(f"cannot read the logs of {address}: {exc}") from None


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def _load_registry(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> LiveRegistry | None:
    if value is None:
        return None
    try:
        return LiveRegistry(lambda: Registry.load(value), value)
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
                "(backoff, backoff_max_delay, release_hold, bounded_load_factor, queue_limit). "
                "Default: Fn's.",
            ),
            _factor_option,
            click.option(
                "--max-request-size",
                envvar="FN_MAX_REQUEST_SIZE",
                default=DEFAULT_MAX_REQUEST_SIZE,
                show_default=True,
                type=click.IntRange(min=0),
                help="Largest request body, in bytes: larger ones get 413 before any runner "
                "is tried; 0: no limit [env FN_MAX_REQUEST_SIZE].",
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


def _check_api_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            api_base_url(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


def _edge_options(function: Any) -> Any:
    """Add the HTTP edge's limits and the drain timeout, shared by ``lb`` and ``dev``."""
    defaults = EdgeLimits()
    for option in reversed(
        [
            click.option(
                "--max-header-size",
                default=defaults.max_header_size,
                show_default=True,
                type=click.IntRange(min=1024),
                help="Largest request head (request line and headers), in bytes: larger "
                "ones get 431.",
            ),
            click.option(
                "--header-timeout",
                default=defaults.header_timeout,
                show_default=True,
                type=click.FloatRange(min=0, min_open=True),
                help="Seconds a connection has to send a request head, from when it opens or "
                "its request starts: then 408 (slow headers).",
            ),
            click.option(
                "--body-timeout",
                default=defaults.body_timeout,
                show_default=True,
                type=click.FloatRange(min=0, min_open=True),
                help="Seconds a request has to send its whole body after its head: then 408 "
                "(slow bodies).",
            ),
            click.option(
                "--keepalive-timeout",
                default=defaults.keepalive_timeout,
                show_default=True,
                type=click.FloatRange(min=0, min_open=True),
                help="Seconds an idle keep-alive connection is kept.",
            ),
            click.option(
                "--max-connections",
                default=defaults.max_connections,
                show_default=True,
                type=click.IntRange(min=1),
                help="Connections kept open; a new one past it closes the one idle longest. "
                "When all are busy, requests of new ones get 503 (GET /health is still "
                "answered). Lowered to fit the open files limit (raised to its hard limit).",
            ),
            click.option(
                "--drain-timeout",
                default=DEFAULT_DRAIN_TIMEOUT,
                show_default=True,
                type=click.FloatRange(min=0),
                help="On SIGTERM or SIGINT, seconds to let calls in flight finish; then they "
                "are cancelled (a sync call answers 500) and the load balancer exits.",
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
    type=click.Path(dir_okay=False),
    callback=_load_registry,
    help="TOML file of the apps, functions and triggers that may be called; re-read on SIGHUP "
    "(an invalid file is logged and the previous functions stay). Either this or --api-url.",
)
@click.option(
    "--api-url",
    envvar="FN_RUNNER_API_URL",
    callback=_check_api_url,
    help="Read apps, functions and triggers from this Fn API server, as Fn's LB node does "
    "(http://host:port; a path is ignored). Either this or --config [env FN_RUNNER_API_URL].",
)
@click.option(
    "--api-cache-ttl",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds an object read from the API server is served from the cache (Fn's 5 s).",
)
@click.option(
    "--api-max-stale",
    default=60.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="While the API server is unreachable, serve an object whose cache time ended less "
    "than this many seconds ago, with a warning (0: fail, as Fn).",
)
@click.option(
    "--api-negative-ttl",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds a 'not found' from the API server is cached (0: never, as Fn).",
)
@click.option(
    "--api-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds one read from the API server may take, its retries included (5xx and "
    "network errors are retried with jittered back-off); then 503.",
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
@_edge_options
@click.option(
    "--runner-tls-cert",
    type=click.Path(exists=True, dir_okay=False),
    help="This LB's certificate (mutual TLS).",
)
@click.option(
    "--runner-tls-key", type=click.Path(exists=True, dir_okay=False), help="This LB's private key."
)
@_access_log_option
@_runner_health_options
@click.option(
    "--workers",
    default=default_workers,
    show_default="one per CPU core, or per CPU of the cgroup's quota",
    type=click.IntRange(min=1),
    help="Load balancer processes sharing the port (SO_REUSEPORT), each with its own placer "
    "state and runner connections; /metrics sums them all. A worker that dies stops them all "
    "(exit status 1).",
)
def lb(
    registry: LiveRegistry | None,
    api_url: str | None,
    api_cache_ttl: float,
    api_max_stale: float,
    api_negative_ttl: float,
    api_timeout: float,
    runner_addresses: list[str],
    host: str,
    port: int,
    placer: str,
    placer_config: PlacerConfig | None,
    bounded_load_factor: float | None,
    max_request_size: int,
    max_response_size: int | None,
    runner_tls_ca: str | None,
    max_header_size: int,
    header_timeout: float,
    body_timeout: float,
    keepalive_timeout: float,
    max_connections: int,
    drain_timeout: float,
    runner_tls_cert: str | None,
    runner_tls_key: str | None,
    access_log: bool,
    workers: int,
    **runner_health: Any,
) -> None:
    """Run a load balancer: Fn's invoke API and HTTP triggers, placing calls on runners.

    Serves POST /invoke/FN_ID and ANY /t/APP/SOURCE, with functions from a file (--config)
    or from Fn's API server (--api-url), as Fn's LB node reads them. Also serves GET /health,
    GET /ready (503 while no runner is reachable), GET /metrics (Prometheus) and GET /version.
    On SIGINT or SIGTERM it drains: new calls get 503, calls in flight finish (or are cancelled
    after --drain-timeout), then it exits. On SIGHUP it re-reads its functions file; calls in
    flight are not disturbed.
    """
    if (registry is None) == (api_url is None):
        raise click.UsageError(
            "give either --config (a functions file) or --api-url (Fn's API server)"
            + ("" if registry is None else ", not both")
        )
    health = _runner_health(runner_health)
    stamina.instrumentation.set_on_retry_hooks([log_retry])
    settings = ApiSourceSettings(
        cache_ttl=api_cache_ttl,
        max_stale=api_max_stale,
        negative_ttl=api_negative_ttl,
        timeout=api_timeout,
    )
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
        announce(f"load balancer listening on {url}", address=url)

    async def serve(worker: WorkerContext | None, ready: Callable[[str], None]) -> None:
        # Made on the loop that serves: the API source's HTTP client belongs to it.
        functions = ApiSource(api_url, settings) if api_url is not None else registry
        assert functions is not None
        await serve_lb(
            functions,
            runner_addresses,
            placer=placer,
            placer_config=placer_config,
            host=host,
            port=port,
            max_request_size=max_request_size or None,
            max_response_size=max_response_size,
            runner_ssl=runner_ssl,
            edge=EdgeLimits(
                max_header_size=max_header_size,
                header_timeout=header_timeout,
                body_timeout=body_timeout,
                keepalive_timeout=keepalive_timeout,
                max_connections=max_connections,
            ),
            drain_timeout=drain_timeout,
            on_ready=ready,
            access_log=access_log,
            on_hangup=None if registry is None else registry.reload,
            worker=worker,
            **health,
        )

    def serve_worker(worker: WorkerContext, listening: Callable[[], None]) -> None:
        asyncio.run(serve(worker, lambda url: listening()))

    try:
        if workers == 1:
            asyncio.run(serve(None, ready))
            return
        status = run_workers(
            workers, host, port, serve_worker, on_ready=ready, hangup=registry is not None
        )
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from None
    sys.exit(status)


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
@_wheelhouse_option
@_index_url_option
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
@_edge_options
@_access_log_option
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
    access_log: bool,
    max_header_size: int,
    header_timeout: float,
    body_timeout: float,
    keepalive_timeout: float,
    max_connections: int,
    drain_timeout: float,
    no_sandbox: bool,
) -> None:
    """Try runnerpool or develop functions: a load balancer and runners on this machine.

    The runners run Fn FDK functions as hot processes: your bundles (--bundles DIR, or a
    --config file), else the examples of ``examples/``. Prints the URL and a curl line per
    function; Ctrl-C stops everything it started.
    """
    examples = bundles is None and config is None
    # The runners' stderr is this process's: the same format.
    runner_args = ["--log-format", ctx.find_root().meta["runnerpool.log"].format]
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
    try:
        asyncio.run(
            run_dev(
                functions=functions,
                bundles=root,
                config=config,
                examples=examples,
                host=host,
                port=port,
                runners=runners,
                placer=placer,
                echo=click.echo,
                runner_args=runner_args,
                access_log=access_log,
                edge=EdgeLimits(
                    max_header_size=max_header_size,
                    header_timeout=header_timeout,
                    body_timeout=body_timeout,
                    keepalive_timeout=keepalive_timeout,
                    max_connections=max_connections,
                ),
                drain_timeout=drain_timeout,
            )
        )
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from None
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None


#: runnerpool is installed from its repository, not an index: name the package itself.
_NO_MATPLOTLIB = (
    "matplotlib is not installed: pip install matplotlib (or, in a clone of runnerpool, "
    "pip install '.[sim]') to write plots"
)


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
    "over runners that refused), fifo (as release, but waiting calls keep their arrival "
    "order in a bounded queue, and calls it cannot serve in time get their 503 at once).",
)
@click.option(
    "--release-hold",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds the release mode passes over a refusing runner with no release.",
)
@click.option(
    "--placer-timeout",
    default=360.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a placer searches for a runner for a call (Fn's 360): the call's deadline "
    "for its 503.",
)
@click.option(
    "--lbs",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Load balancers placing the workload, each with its own placer state; calls go to "
    "them round robin.",
)
@_factor_option
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
    placers: str,
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
    import importlib.util
    from pathlib import Path

    from .sim import SimulationSettings, format_table, write_plots
    from .sim import simulate as run_simulation

    # Before simulating, not after: a long run should not end in "cannot plot".
    if plots is not None and importlib.util.find_spec("matplotlib") is None:
        raise click.ClickException(_NO_MATPLOTLIB)

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
        placer_timeout=placer_timeout,
        lbs=lbs,
    )
    total = len(settings.workload().arrivals) * len(names) * len(backoff)
    if progress is None:
        # A progress bar is no JSON line.
        progress = total >= _LONG_RUN and sys.stderr.isatty() and not json_mode()
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
            raise click.ClickException(_NO_MATPLOTLIB)
        if json_mode():
            logger.info("Wrote %d plots to %s", len(written), plots)
        else:
            click.echo(f"wrote {len(written)} plots to {plots}", err=True)
