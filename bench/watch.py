"""Watching bundles for `runnerpool dev`: how soon a save is seen, and what watching costs.

A directory of ``--bundles`` bundles (``func.py``, ``func.yaml``, ``requirements.txt`` each)
is watched by each candidate while this process edits one ``func.py`` ``--edits`` times, one
edit every 0.2 s; the latency is from the write to the candidate telling this event loop.
Idle cost: CPU seconds of this process (all threads) per second of watching with no change.

* ``poll`` (the baseline): what one writes by hand, ``os.walk`` + ``stat`` of every file
  every 50 ms, compared with the last scan.
* ``watchfiles``: ``watchfiles.awatch(step=50)`` as ``runnerpool dev`` runs it (inotify through
  Rust's notify, in a thread; a burst ends after 50 ms of quiet, so its latency includes them).
* ``watchdog``: ``watchdog``'s inotify ``Observer`` with a handler (no grouping of bursts);
  measured only if installed (it is not a dependency).

Per call, for the runner-side design this replaced (a runner checking a bundle before reusing
a process): the time to fingerprint one bundle by ``stat`` and by content
(``bundle_version``); with the version in the image tag a call pays neither.

Run: ``python -m bench.watch`` (about 20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.util
import os
import statistics
import tempfile
import time
import timeit
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import watchfiles

from runnerpool._dev_watch import bundle_version

#: Seconds between two edits: longer than any candidate's grouping of a burst.
_GAP = 0.2
_POLL = 0.05

Watch = Callable[[Path, asyncio.Event], contextlib.AbstractAsyncContextManager[None]]


def make_bundles(root: Path, count: int) -> None:
    """Write ``count`` small bundles under ``root``."""
    for index in range(count):
        directory = root / f"fn{index}"
        directory.mkdir(parents=True)
        (directory / "func.py").write_text("def handler(ctx, data=None):\n    return 'v0'\n")
        (directory / "func.yaml").write_text(f"name: fn{index}\nmemory: 64\n")
        (directory / "requirements.txt").write_text("")


def _scan(root: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            info = os.stat(path)
            found[path] = (info.st_mtime_ns, info.st_size)
    return found


@contextlib.asynccontextmanager
async def poll(root: Path, seen: asyncio.Event) -> AsyncIterator[None]:
    """The baseline: scan every 50 ms."""

    async def run() -> None:
        last = _scan(root)
        while True:
            await asyncio.sleep(_POLL)
            now = _scan(root)
            if now != last:
                last = now
                seen.set()

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def with_watchfiles(root: Path, seen: asyncio.Event) -> AsyncIterator[None]:
    """Watch with watchfiles' awatch, as `runnerpool dev` runs it."""
    stop = asyncio.Event()

    async def run() -> None:
        async for _ in watchfiles.awatch(root, stop_event=stop, step=50):
            seen.set()

    task = asyncio.create_task(run())
    await asyncio.sleep(0)
    try:
        yield
    finally:
        stop.set()
        await task


@contextlib.asynccontextmanager
async def with_watchdog(root: Path, seen: asyncio.Event) -> AsyncIterator[None]:
    """Watch with watchdog's inotify observer (imported by name: it is not a dependency)."""
    observers = importlib.import_module("watchdog.observers")
    loop = asyncio.get_running_loop()

    class Handler:
        """What the observer calls for each event (its handler protocol)."""

        def dispatch(self, event: Any) -> None:
            if event.event_type != "opened" and not event.event_type.startswith("closed_no"):
                loop.call_soon_threadsafe(seen.set)

    observer = observers.Observer()
    observer.schedule(Handler(), str(root), recursive=True)
    observer.start()
    try:
        yield
    finally:
        observer.stop()
        await asyncio.to_thread(observer.join)


async def measure(watch: Watch, root: Path, edits: int, idle: float) -> tuple[list[float], float]:
    """Return the latencies of ``edits`` edits (s) and the idle CPU (s per s of watching)."""
    seen = asyncio.Event()
    target = root / "fn0" / "func.py"
    latencies = []
    async with watch(root, seen):
        await asyncio.sleep(_GAP)
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(idle)
        idle_cpu = (time.process_time() - cpu) / (time.monotonic() - wall)
        for index in range(edits):
            seen.clear()
            started = time.perf_counter()
            target.write_text(f"def handler(ctx, data=None):\n    return 'v{index + 1}'\n")
            async with asyncio.timeout(10):
                await seen.wait()
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(_GAP)
    return latencies, idle_cpu


def candidates() -> dict[str, Watch]:
    """The watchers to measure, the baseline first."""
    found: dict[str, Watch] = {"poll 50 ms (baseline)": poll, "watchfiles": with_watchfiles}
    if importlib.util.find_spec("watchdog") is not None:
        found["watchdog"] = with_watchdog
    return found


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundles", type=int, default=20, help="bundles in the directory")
    parser.add_argument("--edits", type=int, default=30, help="edits timed per candidate")
    parser.add_argument("--idle", type=float, default=3.0, help="seconds of idle watching")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-watch-") as name:
        root = Path(name)
        make_bundles(root, args.bundles)
        results = {
            label: asyncio.run(measure(watch, root, args.edits, args.idle))
            for label, watch in candidates().items()
        }
        bundle = root / "fn0"
        per_call = {
            "stat fingerprint": _best(lambda: _scan(bundle)),
            "content fingerprint (bundle_version)": _best(lambda: bundle_version(bundle)),
        }
    print(f"{args.bundles} bundles, {args.edits} edits, {args.idle:g} s idle")
    print(f"{'watcher':<24}{'p50 ms':>9}{'p99 ms':>9}{'x base':>8}{'idle CPU ms/s':>15}")
    base = statistics.median(next(iter(results.values()))[0])
    for label, (latencies, idle_cpu) in results.items():
        p50 = statistics.median(latencies)
        p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else p50
        print(
            f"{label:<24}{p50 * 1e3:>9.1f}{p99 * 1e3:>9.1f}{p50 / base:>7.2f}x"
            f"{idle_cpu * 1e3:>15.2f}"
        )
    print(f"{'per call, one bundle':<40}{'us':>8}")
    for label, seconds in per_call.items():
        print(f"{label:<40}{seconds * 1e6:>8.1f}")
    print(f"{'version in the image tag (chosen)':<40}{0.0:>8.1f}")


def _best(function: Callable[[], object]) -> float:
    """Best of 5 timings of 200 runs, in seconds per run."""
    return min(timeit.repeat(function, number=200, repeat=5)) / 200


if __name__ == "__main__":
    main()
