"""The runner's directory of socket directories, and reclaiming those of runners that died.

Each runner makes a fresh ``runnerpool-iofs-*`` directory under the system's temporary
directory and holds a lock on it (``flock`` on the directory itself) for its whole life (the
kernel drops the lock when the process dies, however it dies). At start, a runner removes
every such directory whose lock it can take: its runner is gone (a SIGKILL leaves no chance
to clean up).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["IofsRoot"]

logger = logging.getLogger(__name__)

_PREFIX = "runnerpool-iofs-"


class IofsRoot:
    """A runner's own directory of socket directories, locked while the runner lives.

    Args:
        parent: Where to make it (default: the system's temporary directory).
    """

    def __init__(self, parent: Path | None = None) -> None:
        parent = Path(tempfile.gettempdir()) if parent is None else parent
        reclaim(parent)
        # Made under another name, locked, then renamed: a runner starting meanwhile must
        # never see it unlocked, take it for a dead runner's and remove it.
        made = Path(tempfile.mkdtemp(prefix=f".{_PREFIX}new-", dir=parent))
        # Sandboxed functions never see it (each gets its own directory only).
        self._lock = os.open(made, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.path = parent / f"{_PREFIX}{made.name.removeprefix(f'.{_PREFIX}new-')}"
        made.rename(self.path)  # the lock is the directory's own: it moves with it

    def remove(self) -> None:
        """Remove the directory and drop the lock."""
        shutil.rmtree(self.path, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.close(self._lock)


def reclaim(parent: Path) -> list[Path]:
    """Remove the directories of runners that died; return them."""
    removed = []
    for path in parent.glob(f"{_PREFIX}*"):
        try:
            lock = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # its runner is alive
        finally:
            os.close(lock)
        shutil.rmtree(path, ignore_errors=True)
        logger.info("Removed the socket directories of a runner that died: %s", path)
        removed.append(path)
    return removed
