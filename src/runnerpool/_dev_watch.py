"""``runnerpool dev``'s edit loop: bundle versions, and a watcher that reloads the functions.

How the runners learn that a bundle changed: they do not need to. The load balancer gives each
function the image ``<bundle>:<version>``, the version being a digest of the bundle's files.
The runners resolve the bundle by its name (the tag is ignored), but the image is part of Fn's
slot key, so a call after an edit has a new slot key and never takes a process started from
the old files: it starts a new one, from the new files, in the environment of the new
``requirements.txt`` (environments are keyed by their requirements, so a changed file builds
one). That costs the runners nothing per call, holds across every runner process at once, and
is what Fn does with a new image version. The old processes are idle and stop after their
``idle_timeout``, or sooner when their memory is needed, as in Fn.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from typing import TYPE_CHECKING

import watchfiles

from ._resource import AsyncResource
from .lb import Registry, bundle_directories

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from .lb import LiveRegistry

__all__ = ["FunctionWatcher", "bundle_version", "changes", "versioned"]

logger = logging.getLogger(__name__)

#: Hex digits of a bundle's version: 48 bits, no collision among a developer's edits.
_VERSION_DIGITS = 12
#: Milliseconds without further changes that end a burst of them (an editor's save).
_STEP_MS = 50


def _files(directory: Path) -> Iterator[Path]:
    """The bundle's files, in a stable order, without hidden entries and Python's caches."""
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.name == "__pycache__":
            continue
        if path.is_dir():
            yield from _files(path)
        elif path.is_file():
            yield path


def bundle_version(directory: Path) -> str:
    """Return a digest of a bundle's files: their paths and contents.

    A save that changes nothing (or a ``touch``) keeps the version; the FDK's ``__pycache__``
    is not part of it.
    """
    digest = hashlib.sha256()
    for path in _files(directory):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            # Being replaced as we read it: the watcher sees the new file and reads again.
            digest.update(b"\0unreadable")
        digest.update(b"\0")
    return digest.hexdigest()[:_VERSION_DIGITS]


def versioned(registry: Registry, root: Path) -> Registry:
    """Return the registry with each image that is a bundle under ``root`` tagged by its version.

    Any tag the image had is replaced; images that are not bundles under ``root`` are kept.
    """
    versions = {directory.name: bundle_version(directory) for directory in bundle_directories(root)}
    functions = []
    for function in registry.functions:
        name = function.image.rsplit(":", 1)[0] if ":" in function.image else function.image
        version = versions.get(name)
        if version is not None:
            function = dataclasses.replace(function, image=f"{name}:{version}")
        functions.append(function)
    return Registry(registry.apps, functions)


def changes(old: Registry, new: Registry) -> list[str]:
    """Describe what differs between two registries, one phrase per function, by id."""
    before = {function.id: function for function in old.functions}
    after = {function.id: function for function in new.functions}
    said = [f"{fn_id} added" for fn_id in after if fn_id not in before]
    said += [f"{fn_id} removed" for fn_id in before if fn_id not in after]
    said += [
        f"{fn_id} changed"
        for fn_id, function in after.items()
        if fn_id in before and before[fn_id] != function
    ]
    return said


class FunctionWatcher(AsyncResource):
    """Reloads a live registry whenever a bundle under a directory, or a file, changes.

    Files are watched with ``watchfiles`` (inotify, in a thread); a burst of changes (an
    editor's save, a ``git checkout``) is one reload. A single file is watched through its
    directory, not recursively: editors save by replacing the file, which ends a watch on the
    file itself.

    Args:
        registry: What to reload.
        directory: The directory of bundles, watched with everything below it.
        file: A functions file, if the functions are declared in one.
    """

    def __init__(self, registry: LiveRegistry, directory: Path, file: Path | None = None) -> None:
        self._registry = registry
        self._watches: list[tuple[Path, bool, Callable[[watchfiles.Change, str], bool]]] = [
            (directory, True, watchfiles.DefaultFilter())
        ]
        if file is not None:
            name = str(file.resolve())
            self._watches.append((file.resolve().parent, False, lambda _, path: path == name))
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        # One reload at a time: a slower, older read must not replace a newer one.
        self._reloading = asyncio.Lock()

    async def start(self) -> None:
        """Start watching; on return, every later change is seen.

        The functions are read once more, once the watches are in place: a change made while
        they were being set up is then not missed.
        """
        self._tasks = [asyncio.create_task(self._run(*watch)) for watch in self._watches]
        # awatch puts its inotify watch in place in its task's first step, before its first
        # wait, and those steps run as soon as this coroutine yields: they were scheduled first.
        await asyncio.sleep(0)
        await self._reload()

    async def _run(
        self, path: Path, recursive: bool, keep: Callable[[watchfiles.Change, str], bool]
    ) -> None:
        try:
            async for _ in watchfiles.awatch(
                path,
                watch_filter=keep,
                stop_event=self._stop,
                step=_STEP_MS,
                recursive=recursive,
                ignore_permission_denied=True,
            ):
                await self._reload()
        except Exception:
            logger.exception("Watching %s failed: its edits are no longer seen", path)

    async def _reload(self) -> None:
        async with self._reloading:
            old = self._registry.current
            # Off the event loop: reading big bundles must not hold up calls.
            new = await asyncio.to_thread(self._registry.reload, announce=False)
            if new is not None:
                for phrase in changes(old, new):
                    logger.info("Function %s: its next call runs the new version", phrase)

    async def aclose(self) -> None:
        """Stop watching."""
        self._stop.set()
        await asyncio.gather(*self._tasks)
