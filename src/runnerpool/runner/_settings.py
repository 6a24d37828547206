"""The runner's settings: one validated object, built once at the edge and passed down."""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from .._checks import check_drain_timeout, check_port, check_sizes
from ._capacity import Capacity

__all__ = ["RunnerSettings"]


@dataclass(frozen=True, slots=True)
class RunnerSettings:
    """How a runner listens, how much it admits, and how it stops.

    Built once, by the command line or embedding code, and passed to
    :func:`~runnerpool.runner.serve_runner`. Use :func:`dataclasses.replace` for variants.

    Attributes:
        host: Address to listen on.
        port: gRPC port to listen on (0: any free port).
        capacity: Memory and call slots; calls that do not fit now get the 503 NACK
            (``None``: no limit, as :class:`~runnerpool.runner.RunnerService`).
            ``runnerpool runner`` gives the host's memory less Fn's headroom.
        max_request_size: Largest request body accepted, in bytes (``None``: no limit).
        max_response_size: Largest function response accepted, in bytes (``None``: no
            limit).
        ssl: TLS for the server (``None``: plain text, for loopback).
        drain_timeout: Seconds calls in flight may run once stopping; then they are
            cancelled (``None``: wait for them).
        metrics_host: Address the runner's ``/metrics`` is served on (loopback: metrics
            tell what runs where).
        metrics_port: Serve ``GET /metrics`` on this port (0: any free port); ``None``, the
            default: not served.

    Raises:
        ValueError: If the port is out of range, or a size or the drain timeout is
            negative; the message names the field.
    """

    host: str = "127.0.0.1"
    port: int = 9190
    capacity: Capacity | None = None
    max_request_size: int | None = None
    max_response_size: int | None = None
    ssl: ssl.SSLContext | None = None
    drain_timeout: float | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None

    def __post_init__(self) -> None:
        check_port("RunnerSettings", self.port)
        if self.metrics_port is not None:
            check_port("RunnerSettings", self.metrics_port, "metrics_port")
        check_sizes("RunnerSettings", self.max_request_size, self.max_response_size)
        check_drain_timeout("RunnerSettings", self.drain_timeout)
