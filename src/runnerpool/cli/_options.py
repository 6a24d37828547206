"""Option blocks shared by the commands, each written once.

A block is a decorator composed of click options (:func:`compose`). :func:`grouped` also folds
a block's values into the one object the library takes (an :class:`~runnerpool.lb.EdgeLimits`,
an SSL context...), so a command receives, say, ``edge`` instead of five numbers. Defaults
are read from the settings classes, never written here a second time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias, TypeVar

import click

from .. import PlacerConfig
from ..lb import EdgeLimits, LBSettings
from ..placers import placer_help, placer_names
from ..pools import OutlierPolicy
from ..rpc import Keepalive, client_tls

__all__ = [
    "access_log_option",
    "client_tls_options",
    "compose",
    "edge_options",
    "factor_option",
    "grouped",
    "index_url_option",
    "listen_options",
    "placer_config_options",
    "placer_option",
    "runner_health_options",
    "serve",
    "size_options",
    "split_names",
    "wheelhouse_option",
]

F = TypeVar("F", bound=Callable[..., Any])
Decorator: TypeAlias = Callable[[F], F]

#: The load balancer's defaults, which the LB's options show.
LB_DEFAULTS = LBSettings()


def compose(*decorators: Decorator[Any]) -> Decorator[Any]:
    """Return one decorator applying ``decorators`` so that they show in the order given."""

    def apply(function: Any) -> Any:
        for decorator in reversed(decorators):
            function = decorator(function)
        return function

    return apply


def grouped(
    target: str,
    build: Callable[..., object],
    *options: Decorator[Any],
    strip: str = "",
    rename: Mapping[str, str] | None = None,
) -> Decorator[Any]:
    """Add ``options``, and pass the command ``target=build(**their values)`` instead of them.

    Args:
        target: The command's parameter that receives the built object.
        build: Called with each option's value by its parameter name, less ``strip``, or
            by the name ``rename`` gives it.
        options: The click options.
        strip: A prefix removed from the parameter names before ``build`` gets them.
        rename: Parameter name to ``build``'s keyword, where stripping is not enough.

    A ``ValueError`` from ``build`` (a settings class refusing a combination) is a usage error.
    """

    def probe() -> None:
        """Nothing: the options are applied to it once to learn their parameter names."""

    compose(*options)(probe)
    names = [param.name for param in getattr(probe, "__click_params__", []) if param.name]
    keywords = {name: (rename or {}).get(name, name.removeprefix(strip)) for name in names}

    def decorate(function: Any) -> Any:
        @functools.wraps(function)
        def command(*args: Any, **kwargs: Any) -> Any:
            values = {keyword: kwargs.pop(name) for name, keyword in keywords.items()}
            try:
                kwargs[target] = build(**values)
            except ValueError as exc:
                raise click.UsageError(str(exc)) from None
            return function(*args, **kwargs)

        return compose(*options)(command)

    return decorate


def serve(server: Coroutine[Any, Any, None], host: str, port: int) -> None:
    """Run a server until it returns; an address it cannot listen on is a clean CLI error."""
    try:
        asyncio.run(server)
    except OSError as exc:
        raise click.ClickException(f"cannot serve on {host}:{port}: {exc}") from None


def split_names(value: str, known: Sequence[str], what: str) -> list[str]:
    """Split a comma-separated list, each item one of ``known``; blank items dropped.

    Raises:
        click.BadParameter: For an empty list or an unknown item.
    """
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise click.BadParameter(f"unknown {what}(s) {', '.join(unknown)}; use {', '.join(known)}")
    return names


def listen_options(*, port: int, envvar: str, port_help: str, host_help: str) -> Decorator[Any]:
    """``--host`` and ``--port``: where a server listens (loopback by default)."""
    return compose(
        click.option("--host", default=LB_DEFAULTS.host, help=host_help),
        click.option(
            "--port",
            envvar=envvar,
            default=port,
            type=click.IntRange(0, 65535),
            help=f"{port_help} (0: any free port) [env {envvar}].",
        ),
    )


def client_tls_options(prefix: str, *, ca: str, cert: str, key: str) -> Decorator[Any]:
    """``--{prefix}tls-ca``, ``-cert`` and ``-key``, passed as ``{prefix}ssl``: a client's TLS."""
    path = click.Path(exists=True, dir_okay=False)

    def build(ca: str | None, cert: str | None, key: str | None) -> object:
        return None if ca is None else client_tls(ca, cert_file=cert, key_file=key)

    name = prefix.replace("-", "_")
    return grouped(
        f"{name}ssl",
        build,
        click.option(f"--{prefix}tls-ca", type=path, help=ca),
        click.option(f"--{prefix}tls-cert", type=path, help=cert),
        click.option(f"--{prefix}tls-key", type=path, help=key),
        strip=f"{name}tls_",
    )


def size_options(
    *, request_default: int | None, request_help: str, response_help: str
) -> Decorator[Any]:
    """``--max-request-size`` and ``--max-response-size`` (``FN_MAX_*_SIZE``), in bytes."""
    return compose(
        click.option(
            "--max-request-size",
            envvar="FN_MAX_REQUEST_SIZE",
            default=request_default,
            type=click.IntRange(min=0),
            help=f"{request_help} [env FN_MAX_REQUEST_SIZE].",
        ),
        click.option(
            "--max-response-size",
            envvar="FN_MAX_RESPONSE_SIZE",
            type=click.IntRange(min=0),
            help=response_help,
        ),
    )


#: The load balancer's access log, for `lb` and for `dev`.
access_log_option = click.option(
    "--access-log/--no-access-log",
    envvar="FN_ACCESS_LOG",
    default=LB_DEFAULTS.access_log,
    help="Log a line per call: method, path, status, duration, call id, function id, runner, "
    "attempts (logger runnerpool.access, at any --log-level; uvicorn's own access log stays "
    "off) [env FN_ACCESS_LOG].",
)

#: Where FDK functions' packages come from, for `runner` and for the runners `dev` starts.
wheelhouse_option = click.option(
    "--wheelhouse",
    envvar="RUNNERPOOL_WHEELHOUSE",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Install the functions' packages (fdk, requirements.txt) from this directory of "
    "wheels; may be repeated [env RUNNERPOOL_WHEELHOUSE].",
)
index_url_option = click.option(
    "--index-url",
    envvar="RUNNERPOOL_INDEX_URL",
    help="Install the functions' packages from this package index too. Without it, only "
    "the wheelhouse is used and nothing is downloaded [env RUNNERPOOL_INDEX_URL].",
)


class _PlacerChoice(click.Choice[str]):
    """The registered placer names, read when the command line is parsed, not imported."""

    def __init__(self) -> None:
        super().__init__(())

    @property  # type: ignore[override]
    def choices(self) -> Sequence[str]:
        """The placer registry's names (a placer registered after import is one)."""
        return placer_names()

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:
        """Ignore click's own assignment: the registry is the list."""


class _PlacerOption(click.Option):
    """``--placer``, whose help describes the placers registered when it is shown."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        """Describe every registered placer, then let click format the record."""
        self.help = (
            f"How calls choose runners [env FN_PLACER]: {placer_help()}. Unlike Fn, an "
            "unknown value is an error rather than round robin."
        )
        return super().get_help_record(ctx)


#: ``--placer`` (``FN_PLACER``), for `lb` and `dev`.
placer_option = click.option(
    "--placer",
    cls=_PlacerOption,
    envvar="FN_PLACER",
    default=LB_DEFAULTS.placer,
    type=_PlacerChoice(),
)

#: ``--bounded-load-factor``, shared by the commands that choose placers.
factor_option = click.option(
    "--bounded-load-factor",
    type=click.FloatRange(min=1),
    default=None,
    help="c of the bounded placer: no runner takes more than ceil(c x average) of this LB's "
    "calls in flight while others have room. Default: the placer config's, else "
    f"{PlacerConfig().bounded_load_factor:g}.",
)


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


def _placer_config(
    placer_config: PlacerConfig | None, bounded_load_factor: float | None
) -> PlacerConfig:
    config = PlacerConfig() if placer_config is None else placer_config
    if bounded_load_factor is None:
        return config
    # The flag writes the one setting the placer reads: the configuration's factor.
    return dataclasses.replace(config, bounded_load_factor=bounded_load_factor)


#: ``--placer-config`` and ``--bounded-load-factor``, passed as one ``placer_config``.
placer_config_options = grouped(
    "placer_config",
    _placer_config,
    click.option(
        "--placer-config",
        type=click.Path(exists=True, dir_okay=False),
        callback=_load_placer_config,
        help="JSON file with Fn's placer settings (retry_all_delay, placer_timeout, "
        'detached_placer_timeout; Go nanoseconds or "10ms") and runnerpool\'s '
        "(backoff, backoff_max_delay, release_hold, bounded_load_factor, queue_limit). "
        "Default: Fn's.",
    ),
    factor_option,
)

#: The HTTP edge's limits, passed as one ``edge`` (:class:`~runnerpool.lb.EdgeLimits`), and
#: the drain timeout: for `lb` and `dev`.
edge_options = compose(
    grouped(
        "edge",
        EdgeLimits,
        click.option(
            "--max-header-size",
            default=LB_DEFAULTS.edge.max_header_size,
            type=click.IntRange(min=1024),
            help="Largest request head (request line and headers), in bytes: larger ones get 431.",
        ),
        click.option(
            "--header-timeout",
            default=LB_DEFAULTS.edge.header_timeout,
            type=click.FloatRange(min=0, min_open=True),
            help="Seconds a connection has to send a request head, from when it opens or "
            "its request starts: then 408 (slow headers).",
        ),
        click.option(
            "--body-timeout",
            default=LB_DEFAULTS.edge.body_timeout,
            type=click.FloatRange(min=0, min_open=True),
            help="Seconds a request has to send its whole body after its head: then 408 "
            "(slow bodies).",
        ),
        click.option(
            "--keepalive-timeout",
            default=LB_DEFAULTS.edge.keepalive_timeout,
            type=click.FloatRange(min=0, min_open=True),
            help="Seconds an idle keep-alive connection is kept.",
        ),
        click.option(
            "--max-connections",
            default=LB_DEFAULTS.edge.max_connections,
            type=click.IntRange(min=1),
            help="Connections kept open; a new one past it closes the one idle longest. "
            "When all are busy, requests of new ones get 503 (GET /health is still "
            "answered). Lowered to fit the open files limit (raised to its hard limit).",
        ),
    ),
    click.option(
        "--drain-timeout",
        default=LB_DEFAULTS.drain_timeout,
        type=click.FloatRange(min=0),
        help="On SIGTERM or SIGINT, seconds to let calls in flight finish; then they "
        "are cancelled (a sync call answers 500) and the load balancer exits.",
    ),
)


_SECONDS = click.FloatRange(min=0, min_open=True)
_KEEPALIVE = LB_DEFAULTS.keepalive
_OUTLIERS = LB_DEFAULTS.outlier_policy

#: The LB's connections to its runners (``keepalive``, ``runner_connections``) and their
#: ejection (``outlier_policy``): :class:`~runnerpool.lb.LBSettings` fields.
runner_health_options = compose(
    grouped(
        "keepalive",
        Keepalive,
        click.option(
            "--runner-connect-timeout",
            default=_KEEPALIVE.connect_timeout,
            type=_SECONDS,
            help="Seconds a connection to a runner may take, until the runner's first "
            "HTTP/2 frame; a runner not answering in time is skipped.",
        ),
        click.option(
            "--runner-keepalive",
            default=_KEEPALIVE.interval,
            type=_SECONDS,
            help="Seconds of silence on a runner connection after which a PING is sent.",
        ),
        click.option(
            "--runner-keepalive-timeout",
            default=_KEEPALIVE.timeout,
            type=_SECONDS,
            help="Seconds a PING may go unanswered before the connection is declared dead: "
            "its calls end at once (500 if the runner had them, else placed elsewhere).",
        ),
        rename={
            "runner_connect_timeout": "connect_timeout",
            "runner_keepalive": "interval",
            "runner_keepalive_timeout": "timeout",
        },
    ),
    click.option(
        "--runner-connections",
        default=LB_DEFAULTS.runner_connections,
        type=click.IntRange(min=1),
        help="Connections to each runner at most; a new one opens when the others "
        "carry as many calls as the runner allows per connection (100).",
    ),
    grouped(
        "outlier_policy",
        OutlierPolicy,
        click.option(
            "--eject-after",
            default=_OUTLIERS.eject_after,
            type=click.IntRange(min=1),
            help="Consecutive failures (connect, dead connection, probe) that eject a runner.",
        ),
        click.option(
            "--ejection-time",
            default=_OUTLIERS.base_ejection,
            type=_SECONDS,
            help="Seconds before an ejected runner is probed; doubles with each ejection in a row.",
        ),
        click.option(
            "--max-ejection-time",
            default=_OUTLIERS.max_ejection,
            type=_SECONDS,
            help="The longest wait between probes of an ejected runner.",
        ),
        click.option(
            "--probe-interval",
            default=_OUTLIERS.probe_interval,
            type=_SECONDS,
            help="Seconds between health probes (the Status RPC) of a runner in rotation.",
        ),
        click.option(
            "--max-ejected-share",
            default=_OUTLIERS.max_ejected_share,
            type=click.FloatRange(0, 1),
            help="Panic threshold: while more than this share of the runners is ejected, "
            "ejection is ignored.",
        ),
        rename={"ejection_time": "base_ejection", "max_ejection_time": "max_ejection"},
    ),
)
