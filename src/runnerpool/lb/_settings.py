"""The load balancer's settings: one validated object, built once at the edge and passed down."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

from .._checks import check_drain_timeout, check_port, check_sizes
from .._config import PlacerConfig
from .._metric_tags import check_lb_tags
from ..placers import DEFAULT_PLACER, placer_names
from ..pools import OutlierPolicy
from ..rpc import DEFAULT_MAX_CONNECTIONS, Keepalive
from ._limits import DEFAULT_DRAIN_TIMEOUT, DEFAULT_MAX_REQUEST_SIZE, EdgeLimits

__all__ = ["LBSettings"]


@dataclass(frozen=True, slots=True)
class LBSettings:
    """How a load balancer listens, places calls and limits what a client may cost it.

    Built once, by the command line or embedding code, and passed to
    :func:`~runnerpool.lb.serve_lb` (and :func:`~runnerpool.lb.create_app`), the way
    uvicorn's ``Config`` is. Every default is the safe one: loopback, limits on. Use
    :func:`dataclasses.replace` for variants.

    Attributes:
        host: Address to listen on.
        port: Port to listen on (0: any free port).
        placer: A name of :func:`~runnerpool.placers.placer_names`. With
            ``"least-loaded"``, the runners' status is polled in the background for it.
        placer_config: Placer timeouts, back-off and ``bounded_load_factor``.
        max_request_size: Largest request body, in bytes: larger ones get 413 before any
            runner is tried (``None``: no limit).
        max_response_size: Largest function response, in bytes: larger ones get 502
            (``None``: no limit).
        edge: The HTTP edge's per-connection limits. The connection cap is lowered, with a
            warning, to fit the open files limit, which is first raised to its hard limit.
        drain_timeout: Seconds calls in flight may run once draining; then they are
            cancelled (sync calls answer 500) and the load balancer exits (``None``: wait
            for them).
        runner_ssl: TLS for the connections to the runners (``None``: plain text).
        keepalive: Keepalive and connect timeouts of the connections to the runners.
        runner_connections: Connections to each runner at most.
        outlier_policy: When runners are ejected and probed (see
            :class:`~runnerpool.pools.OutlierDetector`).
        access_log: Log a line per call (logger ``runnerpool.access``), in place of
            uvicorn's access log, which stays off.
        metric_tags: Tag keys of the placer and agent metrics on ``/metrics``, among
            :data:`~runnerpool.metrics.LB_TAG_KEYS` (none by default, as in Fn; each one
            multiplies the series: README, "Metrics").

    Raises:
        ValueError: If the port is out of range, the placer is unknown, a size, the drain
            timeout or the connection count is out of range, or a metric tag is unknown; the
            message names the field.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    placer: str = DEFAULT_PLACER
    placer_config: PlacerConfig = field(default_factory=PlacerConfig)
    max_request_size: int | None = DEFAULT_MAX_REQUEST_SIZE
    max_response_size: int | None = None
    edge: EdgeLimits = field(default_factory=EdgeLimits)
    drain_timeout: float | None = DEFAULT_DRAIN_TIMEOUT
    runner_ssl: ssl.SSLContext | None = None
    keepalive: Keepalive = field(default_factory=Keepalive)
    runner_connections: int = DEFAULT_MAX_CONNECTIONS
    outlier_policy: OutlierPolicy = field(default_factory=OutlierPolicy)
    access_log: bool = True
    metric_tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_port("LBSettings", self.port)
        try:
            object.__setattr__(self, "metric_tags", check_lb_tags(self.metric_tags))
        except ValueError as exc:
            raise ValueError(f"LBSettings.metric_tags: {exc}") from None
        if self.placer not in placer_names():
            known = ", ".join(placer_names())
            raise ValueError(f"LBSettings.placer {self.placer!r} is unknown: use one of {known}")
        check_sizes("LBSettings", self.max_request_size, self.max_response_size)
        check_drain_timeout("LBSettings", self.drain_timeout)
        if self.runner_connections < 1:
            raise ValueError(
                f"LBSettings.runner_connections must be >= 1, got {self.runner_connections}"
            )
