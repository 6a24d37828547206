"""``runnerpool runner``: serve a runner; ``status`` and ``logs``: ask one."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import ipaddress
import json
import logging
import ssl
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from grpclib.exceptions import GRPCError

from .._logging import FUNCTION_LOGGER, announce
from .._logs_command import print_logs
from ..fdk import (
    DEFAULT_INIT_TIMEOUT,
    Bundles,
    Environments,
    FdkExecutor,
    Sandbox,
    default_memory_mb,
    host_sandbox,
)
from ..rpc import GrpcRunner, server_tls
from ..runner import (
    Capacity,
    Executor,
    Handler,
    InProcessExecutor,
    RunnerMetrics,
    RunnerServer,
    RunnerSettings,
    serve_runner,
)
from ._group import main
from ._options import (
    client_tls_options,
    grouped,
    index_url_option,
    listen_options,
    serve,
    size_options,
    wheelhouse_option,
)

__all__ = ["logs", "runner", "status"]

logger = logging.getLogger("runnerpool.cli")

_MB = 1024 * 1024
_DEFAULTS = RunnerSettings()


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


def _server_tls(cert: str | None, key: str | None, client_ca: str | None) -> ssl.SSLContext | None:
    if client_ca and not cert:
        raise click.UsageError("--tls-client-ca needs --tls-cert")
    return None if cert is None else server_tls(cert, key, client_ca_file=client_ca)


_file = click.Path(exists=True, dir_okay=False)

#: The runner's TLS, passed as ``ssl``.
_server_tls_options = grouped(
    "ssl",
    _server_tls,
    click.option("--tls-cert", type=_file, help="TLS certificate (PEM)."),
    click.option("--tls-key", type=_file, help="TLS private key (PEM)."),
    click.option(
        "--tls-client-ca",
        type=_file,
        help="Require clients to present a certificate signed by this CA (mutual TLS).",
    ),
    strip="tls_",
)

#: ``status`` and ``logs`` ask a runner: the client's TLS, passed as ``ssl``.
_client_tls_options = client_tls_options(
    "",
    ca="CA of the runner's certificate.",
    cert="Client certificate (mutual TLS).",
    key="Client private key.",
)


@main.command()
@listen_options(
    port=_DEFAULTS.port,
    envvar="FN_GRPC_PORT",
    port_help="gRPC port to listen on",
    host_help="Address to listen on.",
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
@size_options(
    request_default=_DEFAULTS.max_request_size,
    request_help="Largest request body accepted, in bytes (413 beyond)",
    response_help="Largest function response, in bytes (502 beyond) [env FN_MAX_RESPONSE_SIZE].",
)
@click.option(
    "--functions",
    default="runnerpool.examples:FUNCTIONS",
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
@wheelhouse_option
@index_url_option
@click.option(
    "--state-dir",
    envvar="RUNNERPOOL_STATE_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path.home() / ".cache" / "runnerpool",
    help="Where the functions' Python environments are kept between runs.",
)
@click.option(
    "--init-timeout",
    default=DEFAULT_INIT_TIMEOUT,
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a new function process may take to listen (then 504, as Fn).",
)
@_server_tls_options
@click.option(
    "--drain-timeout",
    default=_DEFAULTS.drain_timeout,
    type=click.FloatRange(min=0),
    help="On SIGTERM, seconds to let calls in flight finish before cancelling them. "
    "Default: wait for them.",
)
@click.option(
    "--function-logs/--no-function-logs",
    envvar="RUNNERPOOL_FUNCTION_LOGS",
    default=True,
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
@click.option(
    "--metrics-port",
    envvar="RUNNERPOOL_METRICS_PORT",
    type=click.IntRange(0, 65535),
    help="Serve the runner's Prometheus metrics at http://METRICS-HOST:PORT/metrics (0: any "
    "free port, printed after the ready line). Default: not served "
    "[env RUNNERPOOL_METRICS_PORT].",
)
@click.option(
    "--metrics-host",
    envvar="RUNNERPOOL_METRICS_HOST",
    default=_DEFAULTS.metrics_host,
    help="Address the metrics are served on [env RUNNERPOOL_METRICS_HOST].",
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
    ssl: ssl.SSLContext | None,
    drain_timeout: float | None,
    function_logs: bool,
    no_sandbox: bool,
    insecure: bool,
    metrics_port: int | None,
    metrics_host: str,
) -> None:
    """Run a runner: admit or refuse calls from load balancers, and run them.

    On SIGINT or SIGTERM the runner drains: new calls are refused with the 503 NACK, so the
    load balancers place them elsewhere, and calls in flight finish.
    """
    if not function_logs:
        logging.getLogger(FUNCTION_LOGGER).setLevel(logging.CRITICAL + 1)
    if not _loopback(host) and ssl is None:
        if not insecure:
            raise click.UsageError(
                f"serving on {host} without TLS lets anyone who reaches it run calls: pass "
                "--tls-cert/--tls-key, or --insecure to accept that"
            )
        logger.warning("Serving on %s without TLS (--insecure): anyone can run calls", host)
    settings = RunnerSettings(
        host=host,
        port=port,
        capacity=Capacity(
            memory_mb=default_memory_mb() if max_memory is None else max_memory // _MB,
            max_calls=max_calls,
        ),
        max_request_size=max_request_size,
        max_response_size=max_response_size,
        ssl=ssl,
        drain_timeout=drain_timeout,
        metrics_host=metrics_host,
        metrics_port=metrics_port,
    )
    runner_metrics = RunnerMetrics()
    metrics_address: list[str] = []

    def ready(server: RunnerServer) -> None:
        # One line on stdout, for whoever started the runner (tests and `runnerpool dev`).
        announce(f"runner listening on {server.address}", address=server.address)
        for address in metrics_address:  # then where its metrics are, when served
            announce(f"runner metrics on http://{address}/metrics", address=address)
        if isinstance(executor, FdkExecutor):
            executor.prepare_ahead()

    executor: Executor
    if bundles is None:
        executor = InProcessExecutor(functions)
    else:
        sandbox, state = _sandbox(no_sandbox)
        executor = FdkExecutor(
            Bundles(bundles),
            Environments(
                state_dir / "envs",
                find_links=wheelhouse,
                index_url=index_url,
                metrics=runner_metrics,
            ),
            init_timeout=init_timeout,
            max_response_size=settings.max_response_size,
            sandbox=sandbox,
            sandbox_state=state,
            metrics=runner_metrics,
        )
    streamer = executor if isinstance(executor, FdkExecutor) else None
    serving = serve_runner(
        executor,
        settings,
        on_ready=ready,
        log_streamer=streamer,
        metrics=runner_metrics,
        on_metrics=metrics_address.append,
    )
    serve(serving, host, port)


@main.command()
@click.argument("address")
@_client_tls_options
def status(address: str, ssl: ssl.SSLContext | None) -> None:
    """Print the status of the runner at ADDRESS (host:port) as JSON."""
    try:
        result = asyncio.run(_status(address, ssl))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="ADDRESS") from None
    except Exception as exc:
        raise click.ClickException(f"cannot get the status of {address}: {exc}") from None
    click.echo(json.dumps(result, indent=2, default=_json_default))


async def _status(address: str, ssl_context: ssl.SSLContext | None) -> dict[str, Any]:
    async with GrpcRunner(address, ssl=ssl_context) as runner:
        return dataclasses.asdict(await runner.status())


@main.command()
@click.argument("address")
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="Keep printing new lines as the functions write them, until interrupted.",
)
@_client_tls_options
def logs(address: str, follow: bool, ssl: ssl.SSLContext | None) -> None:
    """Print the function output the runner at ADDRESS (host:port) holds, from StreamLogs.

    One line per line a function wrote: time, app, function, call id, stream and the line.
    Without --follow, prints what the runner holds now and exits.
    """
    try:
        asyncio.run(print_logs(address, follow=follow, ssl=ssl, echo=click.echo))
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
