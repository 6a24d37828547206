"""Checks shared by the load balancer's and the runner's settings.

Each raises ``ValueError`` naming the settings class and its field, as
:class:`~runnerpool.PlacerConfig` does.
"""

from __future__ import annotations

__all__ = ["check_drain_timeout", "check_port", "check_sizes"]


def check_port(owner: str, port: int, field: str = "port") -> None:
    """Raise ``ValueError`` naming ``owner.field`` unless it is a TCP port (0: any)."""
    # bool is an int in Python, but True is no port.
    if isinstance(port, bool) or not 0 <= port <= 65535:
        raise ValueError(f"{owner}.{field} must be an integer from 0 to 65535, got {port!r}")


def check_sizes(owner: str, max_request_size: int | None, max_response_size: int | None) -> None:
    """Raise ``ValueError`` naming the field unless each size limit is ``None`` or >= 0."""
    for name, value in (
        ("max_request_size", max_request_size),
        ("max_response_size", max_response_size),
    ):
        if value is not None and value < 0:
            raise ValueError(f"{owner}.{name} must be >= 0 or None, got {value}")


def check_drain_timeout(owner: str, drain_timeout: float | None) -> None:
    """Raise ``ValueError`` naming ``owner.drain_timeout`` unless it is ``None`` or >= 0."""
    if drain_timeout is not None and not drain_timeout >= 0:
        raise ValueError(f"{owner}.drain_timeout must be >= 0 or None, got {drain_timeout}")
