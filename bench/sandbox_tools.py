"""Sandbox tools compared: what each adds to starting the function's interpreter.

Each way runs ``python -c pass`` with a function environment's interpreter, ``--runs`` times
in alternation; the table gives the median and p90 spawn-to-exit time and the difference
from the plain interpreter. Ways: ``plain`` (no sandbox); ``bwrap`` (the runner's own
sandbox command: namespaces, the file-system view, ``setpriv`` to a per-app uid when root);
``unshare`` (util-linux ``unshare`` with the same namespaces and ``setpriv``, but no file-system
view: a lower bound for doing namespaces without bubblewrap). Needs Linux, bubblewrap, and an
FDK environment (built here from the wheelhouse).

Run: ``python -m bench.sandbox_tools`` (about 20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.fdk import EXAMPLES, IMAGE, default_wheelhouse
from runnerpool.fdk import Bundles, Environments
from runnerpool.fdk._process import _LAUNCHER
from runnerpool.fdk._sandbox import Sandbox


def commands(python: Path, bundle: Path, work: Path) -> dict[str, list[str]]:
    """The command of each way."""
    sandbox = Sandbox.detect(cgroups=False)
    uid = sandbox.uid("bench")
    socket_dir = work / "iofs"
    socket_dir.mkdir()
    if uid is not None:
        os.chown(socket_dir, uid, uid)
    environment = python.parent.parent
    setpriv = [] if uid is None else [str(sandbox.setpriv), f"--reuid={uid}", f"--regid={uid}"]
    setpriv += ["--clear-groups", "--no-new-privs"] if uid is not None else []
    namespaces = ["--mount", "--pid", "--ipc", "--uts", "--fork", "--kill-child"]
    return {
        "plain": [str(python), "-c", "pass"],
        "bwrap": sandbox.command(
            ["/python/bin/python", "-c", "pass"],
            environment=environment,
            bundle=bundle,
            launcher=_LAUNCHER,
            socket_dir=socket_dir,
            uid=uid,
            network=True,
        ),
        "unshare": ["unshare", *namespaces, "--", *setpriv, str(python), "-c", "pass"],
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Time every way and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    args = parser.parse_args(argv)
    if shutil.which("unshare") is None:
        parser.error("util-linux's unshare is needed")
    with tempfile.TemporaryDirectory(prefix="rp-bench-sandbox-") as directory:
        work = Path(directory)
        environments = Environments(work / "envs", find_links=[default_wheelhouse()])
        bundle = Bundles(EXAMPLES).resolve(IMAGE)
        python = asyncio.run(environments.prepare(bundle))
        ways = commands(python, bundle.path, work)
        times: dict[str, list[float]] = {name: [] for name in ways}
        for run in range(args.runs):
            for name in ways if run % 2 == 0 else reversed(list(ways)):
                start = time.perf_counter()
                subprocess.run(ways[name], check=True, env={"PYTHONPATH": "/function"})
                times[name].append(time.perf_counter() - start)
    plain = statistics.median(times["plain"])
    print(f"CPython {sys.version.split()[0]}, {os.cpu_count()} cores, {args.runs} runs each")
    print(f"{'way':<8} {'p50 ms':>8} {'p90 ms':>8} {'+p50 ms':>8}")
    for name, samples in times.items():
        samples.sort()
        p50, p90 = statistics.median(samples), samples[int(0.9 * (len(samples) - 1))]
        print(f"{name:<8} {p50 * 1e3:>8.1f} {p90 * 1e3:>8.1f} {(p50 - plain) * 1e3:>+8.1f}")


if __name__ == "__main__":
    main()
