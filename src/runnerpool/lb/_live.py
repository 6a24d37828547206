"""The load balancer's functions, replaced whole when their source is read again.

``runnerpool lb`` re-reads its functions file on SIGHUP and ``runnerpool dev`` when a bundle
changes. A new registry replaces the old one in one assignment: a call that already looked its
function up keeps it, and calls in flight are not disturbed. A source that no longer reads (a
typo in the file) leaves the old registry in place, and the error, with its line, is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ._registry import ConfigError, Registry
from ._sources import FileSource

__all__ = ["LiveRegistry"]

logger = logging.getLogger(__name__)


class LiveRegistry(FileSource):
    """A function source read from a file or directory, and read again on :meth:`reload`.

    A :class:`~runnerpool.lb._sources.FileSource` whose registry is replaced whole by each
    successful reload.

    Args:
        load: Reads the registry; raises :class:`ConfigError` (or :class:`OSError`) if the
            source is invalid.
        source: What ``load`` reads, for log messages (a file or directory name).

    Raises:
        ConfigError: If the first read fails.
    """

    __slots__ = ("_load", "source")

    def __init__(self, load: Callable[[], Registry], source: str) -> None:
        super().__init__(load())
        self._load = load
        self.source = source

    @property
    def current(self) -> Registry:
        """The registry in force."""
        return self.registry

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
        self.registry = registry
        if announce:
            logger.info("Functions reloaded from %s: %d function(s)", self.source, len(registry))
        return registry
