"""``runnerpool lb``: serve a load balancer."""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import Callable

import click
import stamina.instrumentation

from .. import OutlierPolicy, PlacerConfig
from .._logging import announce
from ..lb import (
    ApiSource,
    ApiSourceSettings,
    ConfigError,
    EdgeLimits,
    LBSettings,
    LiveRegistry,
    Registry,
    WorkerContext,
    api_base_url,
    default_workers,
    log_retry,
    run_workers,
    serve_lb,
)
from ..metrics import parse_lb_tags
from ..rpc import Keepalive
from ._group import main
from ._options import (
    LB_DEFAULTS,
    access_log_option,
    client_tls_options,
    edge_options,
    grouped,
    listen_options,
    placer_config_options,
    placer_option,
    runner_health_options,
    serve,
    size_options,
)

__all__ = ["lb"]

_API = ApiSourceSettings()


def _load_registry(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> LiveRegistry | None:
    if value is None:
        return None
    try:
        return LiveRegistry(lambda: Registry.load(value), value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None


def _check_api_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            api_base_url(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None
    return value


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


def _parse_metric_tags(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    try:
        return parse_lb_tags(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


#: The API server's cache and timeout, passed as ``api_settings``.
_api_options = grouped(
    "api_settings",
    ApiSourceSettings,
    click.option(
        "--api-cache-ttl",
        default=_API.cache_ttl,
        type=click.FloatRange(min=0),
        help="Seconds an object read from the API server is served from the cache (Fn's 5 s).",
    ),
    click.option(
        "--api-max-stale",
        default=_API.max_stale,
        type=click.FloatRange(min=0),
        help="While the API server is unreachable, serve an object whose cache time ended "
        "less than this many seconds ago, with a warning (0: fail, as Fn).",
    ),
    click.option(
        "--api-negative-ttl",
        default=_API.negative_ttl,
        type=click.FloatRange(min=0),
        help="Seconds a 'not found' from the API server is cached (0: never, as Fn).",
    ),
    click.option(
        "--api-timeout",
        default=_API.timeout,
        type=click.FloatRange(min=0, min_open=True),
        help="Seconds one read from the API server may take, its retries included (5xx and "
        "network errors are retried with jittered back-off); then 503.",
    ),
    strip="api_",
)


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
@_api_options
@click.option(
    "--runner-addresses",
    envvar="FN_RUNNER_ADDRESSES",
    required=True,
    callback=_split_addresses,
    help="Comma-separated host:port of the runners [env FN_RUNNER_ADDRESSES].",
)
@listen_options(
    port=LB_DEFAULTS.port,
    envvar="FN_PORT",
    port_help="HTTP port of Fn's invoke API",
    host_help="Address to listen on.",
)
@placer_option
@placer_config_options
@size_options(
    request_default=LB_DEFAULTS.max_request_size,
    request_help="Largest request body, in bytes: larger ones get 413 before any runner "
    "is tried; 0: no limit",
    response_help="Largest function response, in bytes: larger ones get 502 [env "
    "FN_MAX_RESPONSE_SIZE]. Default: no limit.",
)
@client_tls_options(
    "runner-",
    ca="CA of the runners' certificates (TLS to the runners).",
    cert="This LB's certificate (mutual TLS).",
    key="This LB's private key.",
)
@edge_options
@access_log_option
@click.option(
    "--metric-tags",
    envvar="FN_METRIC_TAGS",
    default="",
    callback=_parse_metric_tags,
    help="Comma-separated labels of the placer and call metrics on /metrics, among fn_id, "
    "app_id, runner (none by default, as Fn). Each multiplies the series: by the functions "
    "called, the apps, the runners [env FN_METRIC_TAGS].",
)
@runner_health_options
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
    api_settings: ApiSourceSettings,
    runner_addresses: list[str],
    host: str,
    port: int,
    placer: str,
    placer_config: PlacerConfig,
    max_request_size: int,
    max_response_size: int | None,
    runner_ssl: ssl.SSLContext | None,
    edge: EdgeLimits,
    drain_timeout: float,
    access_log: bool,
    metric_tags: tuple[str, ...],
    keepalive: Keepalive,
    runner_connections: int,
    outlier_policy: OutlierPolicy,
    workers: int,
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
    stamina.instrumentation.set_on_retry_hooks([log_retry])
    settings = LBSettings(
        host=host,
        port=port,
        placer=placer,
        placer_config=placer_config,
        max_request_size=max_request_size or None,
        max_response_size=max_response_size,
        edge=edge,
        drain_timeout=drain_timeout,
        runner_ssl=runner_ssl,
        access_log=access_log,
        keepalive=keepalive,
        runner_connections=runner_connections,
        outlier_policy=outlier_policy,
        metric_tags=metric_tags,
    )

    def ready(url: str) -> None:
        announce(f"load balancer listening on {url}", address=url)

    async def run(
        on_ready: Callable[[str], None] = ready, worker: WorkerContext | None = None
    ) -> None:
        # Made on the loop that serves: the API source's HTTP client belongs to it.
        functions = ApiSource(api_url, api_settings) if api_url is not None else registry
        assert functions is not None
        await serve_lb(
            functions,
            runner_addresses,
            settings,
            on_ready=on_ready,
            on_hangup=None if registry is None else registry.reload,
            worker=worker,
        )

    if workers == 1:
        serve(run(), host, port)
        return

    def run_worker(worker: WorkerContext, listening: Callable[[], None]) -> None:
        asyncio.run(run(lambda url: listening(), worker))

    try:
        status = run_workers(
            workers, host, port, run_worker, on_ready=ready, hangup=registry is not None
        )
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from None
    sys.exit(status)
