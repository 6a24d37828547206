"""The load balancer's functions, replaced whole when their source is read again.

``runnerpool lb`` re-reads its functions file on SIGHUP and ``runnerpool dev`` when a bundle
changes. A new registry replaces the old one in one assignment: a call that already looked its
function up keeps it, and calls in flight are not disturbed. A source that no longer reads (a
typo in the file) leaves the old registry in place, and the error, with its line, is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from ._registry import ConfigError, Function, Registry

__all__ = ["FunctionLookup", "LiveRegistry"]

logger = logging.getLogger(__name__)


class FunctionLookup(Protocol):
    """What the load balancer's front end needs of its functions."""

    def function(self, fn_id: str) -> Function | None:
        """Return the function with this id, or ``None`` if there is none."""


class LiveRegistry:
    """A registry read from a source, and read again on :meth:`reload`.

    Args:
        load: Reads the registry; raises :class:`ConfigError` (or :class:`OSError`) if the
            source is invalid.
        source: What ``load`` reads, for log messages (a file or directory name).

    Raises:
        ConfigError: If the first read fails.
    """

    def __init__(self, load: Callable[[], Registry], source: str) -> None:
        self._load = load
        self.source = source
        #: The registry in force.
        self.current = load()

    def function(self, fn_id: str) -> Function | None:
        """Return the function with this id in the registry in force, or ``None``."""
        return self.current.function(fn_id)

    def reload(self, *, announce: bool = True) -> Registry | None:
        """Read the source again and put it in force; keep the old registry if it is invalid.

        Args:
            announce: Log the reload at INFO (an invalid source is logged at ERROR anyway).

        Returns:
            The new registry, or ``None`` if the source was invalid (the error is logged).
        """
        try:
            registry = self._load()
        except (ConfigError, OSError) as exc:
            logger.error("Functions not reloaded, the previous ones stay in force: %s", exc)
            return None
        self.current = registry
        if announce:
            logger.info("Functions reloaded from %s: %d function(s)", self.source, len(registry))
        return registry
