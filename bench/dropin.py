"""Drop-in benchmark: invokes and triggers with functions from Fn's API server, against a file.

Two ``runnerpool lb`` processes in front of one ``runnerpool runner`` (the in-process
``httpinfo`` test function, which answers what it got, about 1 KB): one reads the functions
file (``--config``, the baseline), the other a test Fn API node (``--api-url``; the node of
``tests/lb/fn_api.py``, in this process, serving the recorded app, function and trigger).
Paths, each ``POST`` with a 5-byte body:

* ``file invoke``: ``/invoke/{fn}`` on the file LB, the baseline;
* ``file trigger``: ``/t/myapp/hello`` on the file LB (header rewriting, response mapping);
* ``api invoke`` and ``api trigger``: the same on the API LB, its cache warm (Fn's 5 s TTL: the
  API node is read again every 5 s, which the table's last column counts).

Each cell runs ``--concurrency`` httpx keep-alive connections back to back for ``--seconds``;
paths are interleaved within each repeat, in alternating order, and the row shown is the
repeat with the best throughput. Every response is checked (200, the trigger id for triggers).

A second table times the lookups alone, in this process, with no HTTP: resolving the
trigger (app id by name, app, trigger, function: Fn's four lookups) and the function of an
invoke, ``--lookups`` times each, from a ``FileSource`` (the baseline) and from an
``ApiSource`` whose cache is warm (its time to live set beyond the run).

Run: ``python -m bench.dropin`` (about 40 s with the defaults).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from tests.lb.fn_api import APP, FN, TRIGGER, FnApi

from runnerpool.lb._api_source import ApiSource, ApiSourceSettings
from runnerpool.lb._registry import HTTP, Registry
from runnerpool.lb._sources import FileSource, FunctionSource

REPOSITORY = Path(__file__).parents[1]
FILE_TOML = f"""\
[[apps]]
name = "myapp"
id = "{APP["id"]}"

[[functions]]
id = "{FN["id"]}"
name = "httpinfo"
app = "myapp"
image = "httpinfo:0.0.1"
memory = 256

[[triggers]]
name = "hello-trig"
id = "{TRIGGER["id"]}"
app = "myapp"
function = "httpinfo"
source = "/hello"
"""


@dataclass
class Cell:
    """One path's figures in one repeat."""

    path: str
    calls: int
    seconds: float
    latencies: list[float]
    api_requests: int

    @property
    def rate(self) -> float:
        """Calls per second."""
        return self.calls / self.seconds

    def percentile(self, fraction: float) -> float:
        """A latency percentile, in milliseconds."""
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def start(
    args: list[str], ready: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start ``runnerpool ARGS``; return it and what follows ``ready`` on its first line."""
    process = subprocess.Popen(
        [sys.executable, "-m", "runnerpool", "--log-level", "warning", *args],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith(ready):
        process.kill()
        raise RuntimeError(f"{args[0]} did not start: {line!r}")
    return process, line.removeprefix(ready).strip()


async def run_cell(
    path: str, url: str, concurrency: int, seconds: float, api: FnApi, trigger: bool
) -> Cell:
    """Call ``url`` from ``concurrency`` connections for ``seconds``; check every answer."""
    latencies: list[float] = []
    before = len(api.requests)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        end = time.monotonic() + seconds

        async def worker() -> None:
            while time.monotonic() < end:
                started = time.perf_counter()
                response = await client.post(url, content=b"hello")
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text}")
                expected = TRIGGER["id"] if trigger else ""
                if response.json()["ids"]["trigger_id"] != expected:
                    raise RuntimeError(f"{path}: wrong call {response.text}")

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return Cell(path, len(latencies), elapsed, latencies, len(api.requests) - before)


async def bench(concurrency: int, seconds: float, repeats: int) -> list[Cell]:
    """Run every path ``repeats`` times, interleaved; return each path's best repeat."""
    api = FnApi()
    api.start()
    processes: list[subprocess.Popen[str]] = []
    try:
        runner, address = start(
            ["runner", "--port", "0", "--functions", "tests.lb.trigger_functions:FUNCTIONS"],
            "runner listening on ",
            env={"PYTHONPATH": str(REPOSITORY)},
        )
        processes.append(runner)
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as config:
            config.write(FILE_TOML)
        common = ["--port", "0", "--runner-addresses", address]
        file_lb, file_url = start(
            ["lb", "--config", config.name, *common], "load balancer listening on "
        )
        processes.append(file_lb)
        api_lb, api_url = start(
            ["lb", "--api-url", api.url, *common], "load balancer listening on "
        )
        processes.append(api_lb)
        paths = {
            "file invoke": (f"{file_url}/invoke/{FN['id']}", False),
            "file trigger": (f"{file_url}/t/myapp/hello", True),
            "api invoke": (f"{api_url}/invoke/{FN['id']}", False),
            "api trigger": (f"{api_url}/t/myapp/hello", True),
        }
        for path, (url, trigger) in paths.items():  # warm up: connections, caches, processes
            await run_cell(path, url, concurrency, min(1.0, seconds), api, trigger)
        best: dict[str, Cell] = {}
        for repeat in range(repeats):
            order = list(paths) if repeat % 2 == 0 else list(reversed(paths))
            for path in order:
                url, trigger = paths[path]
                cell = await run_cell(path, url, concurrency, seconds, api, trigger)
                if path not in best or cell.rate > best[path].rate:
                    best[path] = cell
        return [best[path] for path in paths]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)
            if process.stdout is not None:
                process.stdout.close()
        api.stop()


async def trigger_lookups(source: FunctionSource, count: int) -> float:
    """Resolve the recorded trigger ``count`` times; return microseconds per resolution."""
    started = time.perf_counter()
    for _ in range(count):
        app_id = await source.app_id("myapp")
        await source.app(app_id)
        trigger = await source.trigger(app_id, HTTP, "/hello")
        await source.function(trigger.fn_id)
    return 1e6 * (time.perf_counter() - started) / count


async def invoke_lookups(source: FunctionSource, count: int) -> float:
    """Look the recorded function up ``count`` times; return microseconds per lookup."""
    started = time.perf_counter()
    for _ in range(count):
        await source.function(FN["id"])
    return 1e6 * (time.perf_counter() - started) / count


async def lookups(count: int) -> dict[str, tuple[float, float]]:
    """Time the lookups of both sources: ``{source: (trigger µs, invoke µs)}``, best of 3."""
    api = FnApi()
    api.start()
    api_source = ApiSource(api.url, ApiSourceSettings(cache_ttl=3600))
    sources: dict[str, FunctionSource] = {
        "file": FileSource(Registry.from_toml(FILE_TOML)),
        "api (warm cache)": api_source,
    }
    try:
        results = {}
        for name, source in sources.items():
            await trigger_lookups(source, 10)  # fills the API source's cache
            results[name] = (
                min([await trigger_lookups(source, count) for _ in range(3)]),
                min([await invoke_lookups(source, count) for _ in range(3)]),
            )
        return results
    finally:
        await api_source.aclose()
        api.stop()


def main(argv: list[str] | None = None) -> None:
    """Parse the options (``argv``, else the command line), run, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lookups", type=int, default=20_000)
    options = parser.parse_args(argv)
    cells = asyncio.run(bench(options.concurrency, options.seconds, options.repeats))
    baseline = cells[0].rate
    print(
        f"concurrency {options.concurrency}, {options.seconds:g} s a cell, "
        f"best of {options.repeats}"
    )
    print("| path | calls/s | vs file invoke | p50 ms | p99 ms | API requests |")
    print("|---|---|---|---|---|---|")
    for cell in cells:
        print(
            f"| {cell.path} | {cell.rate:.0f} | {cell.rate / baseline:.2f} | "
            f"{cell.percentile(0.5):.1f} | {cell.percentile(0.99):.1f} | {cell.api_requests} |"
        )
    print(json.dumps({cell.path: round(cell.rate, 1) for cell in cells}))
    timed = asyncio.run(lookups(options.lookups))
    file_trigger, file_invoke = timed["file"]
    print(f"\nlookups in this process, {options.lookups} each, best of 3")
    print("| source | trigger µs | vs file | invoke µs | vs file |")
    print("|---|---|---|---|---|")
    for name, (trigger_us, invoke_us) in timed.items():
        print(
            f"| {name} | {trigger_us:.1f} | {trigger_us / file_trigger:.2f} | "
            f"{invoke_us:.1f} | {invoke_us / file_invoke:.2f} |"
        )


if __name__ == "__main__":
    main()
