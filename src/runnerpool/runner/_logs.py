"""Log streaming: what a runner's ``StreamLogs`` sends to a log collector.

A collector opens ``StreamLogs`` with a ``Start`` message carrying its configuration; the runner
answers batches of log lines grouped by container and request, and sends the next batch after
the collector acknowledges the last one (``Ack`` or ``Ready``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["ContainerLogs", "LogLine", "LogStreamer", "RequestLogs"]


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a function's output.

    Attributes:
        timestamp_ms: When it was written, in Unix milliseconds.
        data: The line's bytes.
        source: ``"stdout"`` or ``"stderr"``.
    """

    timestamp_ms: int
    data: bytes
    source: Literal["stdout", "stderr"] = "stdout"


@dataclass(frozen=True, slots=True)
class RequestLogs:
    """The lines one call wrote.

    Attributes:
        request_id: The call's request id.
        lines: Its lines, in order.
    """

    request_id: str
    lines: Sequence[LogLine]


@dataclass(frozen=True, slots=True)
class ContainerLogs:
    """The lines of the calls one function process (Fn: container) ran.

    Attributes:
        app_id: The function's app.
        fn_id: The function.
        container_id: The process (container) that ran the calls.
        requests: Lines per call.
    """

    app_id: str
    fn_id: str
    container_id: str
    requests: Sequence[RequestLogs]


class LogStreamer(Protocol):
    """Produces a runner's function logs for a collector."""

    def stream(self, config: Mapping[str, str]) -> AsyncIterator[Sequence[ContainerLogs]]:
        """Yield batches of logs for a collector that sent this configuration."""
