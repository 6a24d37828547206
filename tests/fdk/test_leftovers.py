"""Nothing left behind: a killed `runnerpool dev` or runner takes its processes with it.

`runnerpool dev` SIGKILLed: its runners and their function processes die too (the kernel's
parent-death signal, and each sandbox dies with its runner). A runner SIGKILLed leaves its
socket directories; the next runner to start removes them.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runnerpool import BufferedCall, Call, GrpcRunner
from runnerpool.fdk._iofs import IofsRoot, reclaim

from .conftest import EXAMPLES, alive, until, wheelhouse

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, children first."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


@pytest.fixture
def state(tmp_path: Path, environments_root: Path) -> Path:
    """A state directory whose environments are the session's (built once)."""
    path = tmp_path / "state"
    path.mkdir()
    (path / "envs").symlink_to(environments_root)
    return path


@pytest.fixture
def tmp() -> Iterator[Path]:
    """A short temporary directory: socket paths under it must fit in 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="rp-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; any still running at its end are killed."""
    processes: list[subprocess.Popen[str]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


def start(
    started: list[subprocess.Popen[str]], args: list[str], tmp: Path, state: Path
) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "TMPDIR": str(tmp),  # where runners make their socket directories
        "RUNNERPOOL_WHEELHOUSE": str(wheelhouse()),
        "RUNNERPOOL_STATE_DIR": str(state),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "runnerpool", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    started.append(process)
    return process


def roots(parent: Path) -> list[Path]:
    """The runners' directories of socket directories under ``parent``."""
    return list(parent.glob("runnerpool-iofs-*"))


async def read_line(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return await asyncio.to_thread(process.stdout.readline)


async def test_sigkilled_dev_takes_runners_and_functions_with_it(
    started: list[subprocess.Popen[str]], tmp: Path, state: Path
) -> None:
    """SIGKILL `runnerpool dev` after a call: no runner and no function process survives."""
    dev = start(started, ["dev", "--port", "0", "--bundles", str(EXAMPLES)], tmp, state)
    banner = "".join([await read_line(dev) for _ in range(7)])
    url = re.search(r"load balancer\s+(http://\S+)", banner)
    assert url is not None, banner
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(f"{url[1]}/invoke/hello", content=b'{"name": "Ada"}')
    assert response.status_code == 200
    below = descendants(dev.pid)
    assert len(below) >= 4  # three runners, and at least the sandbox of the called function
    dev.kill()
    dev.wait()
    await until(lambda: not [pid for pid in below if alive(pid)], 15.0)


async def test_next_runner_reclaims_a_killed_runners_socket_directories(
    started: list[subprocess.Popen[str]], tmp: Path, state: Path
) -> None:
    """A SIGKILLed runner's function dies with it; the next runner removes its directories."""
    args = ["runner", "--port", "0", "--bundles", str(EXAMPLES)]
    first = start(started, args, tmp, state)
    address = (await read_line(first)).removeprefix("runner listening on ").strip()
    client = GrpcRunner(address)
    try:
        call = BufferedCall(
            Call(id="c1", app_id="a", fn_id="echo", image="echo", timeout=30, memory=64), body=b"x"
        )
        await client.try_exec(call)
    finally:
        await client.aclose()
    [left] = roots(tmp)
    assert [path for path in left.iterdir() if path.name.startswith("iofs")]
    functions = descendants(first.pid)
    assert functions
    first.send_signal(signal.SIGKILL)
    first.wait()
    await until(lambda: not [pid for pid in functions if alive(pid)], 10.0)
    assert left.exists()  # SIGKILL leaves no chance to clean up
    second = start(started, args, tmp, state)
    assert (await read_line(second)).startswith("runner listening on ")
    assert not left.exists()
    assert len(roots(tmp)) == 1  # the second runner's own


def test_a_live_roots_directory_is_never_reclaimed(tmp_path: Path) -> None:
    """A root is locked under its final name: another runner's start leaves it alone."""
    live = IofsRoot(tmp_path)
    assert live.path.name.startswith("runnerpool-iofs-")
    assert reclaim(tmp_path) == []
    assert live.path.is_dir()
    assert [p.name for p in tmp_path.iterdir()] == [live.path.name]  # no half-made name left
    live.remove()
    dead = tmp_path / "runnerpool-iofs-dead"
    dead.mkdir()  # nobody holds its lock: its runner died
    assert reclaim(tmp_path) == [dead]
    assert not dead.exists()
