"""Safe defaults of a runner started with no options: memory capacity from the host.

The runner runs inside a memory cgroup of 512 MB made by the test, which is what the host's
memory is to it (as in a container): its default capacity is that less Fn's headroom (256 MB),
so two 128 MB functions fit and a third call is refused with the NACK.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from runnerpool import BufferedCall, Call, GrpcRunner, RunnerBusyError
from runnerpool.fdk._cgroups import default_memory_mb

from .conftest import EXAMPLES, wheelhouse

LIMIT_MB = 512


def _memory_cgroup() -> Path | None:
    """A fresh memory cgroup (v1 or v2) under this process's own, limited to LIMIT_MB."""
    limit = str(LIMIT_MB * 1024 * 1024)
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, own = line.split(":", 2)
        if "memory" in controllers.split(","):
            path = Path("/sys/fs/cgroup/memory", own.lstrip("/"), f"rp-test-{uuid.uuid4().hex}")
            name = "memory.limit_in_bytes"
            break
        if controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            path = Path("/sys/fs/cgroup", own.lstrip("/"), f"rp-test-{uuid.uuid4().hex}")
            name = "memory.max"
    else:
        return None
    try:
        path.mkdir()
        (path / name).write_text(limit)
    except OSError:
        return None
    return path


@pytest.fixture
def cgroup() -> Iterator[Path]:
    """A small memory cgroup, removed after the test."""
    path = _memory_cgroup()
    if path is None:
        pytest.skip("this host lets the test make no memory cgroup")
    try:
        yield path
    finally:
        for _ in range(100):
            try:
                path.rmdir()
                break
            except OSError:
                subprocess.run(["sleep", "0.05"], check=False)


def test_default_is_the_hosts_memory_less_fns_headroom() -> None:
    """Fn's headroom: 10 % of the memory, from 256 MB to 5 GB."""
    assert default_memory_mb(512) == 256
    assert default_memory_mb(24_000) == 21_600
    assert default_memory_mb(100_000) == 100_000 - 5 * 1024


async def test_runner_with_no_options_nacks_once_its_memory_is_used(
    cgroup: Path, tmp_path: Path, environments_root: Path
) -> None:
    """No --max-memory: the runner's capacity is its cgroup's memory; beyond it, the NACK."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "envs").symlink_to(environments_root)
    bundles = tmp_path / "bundles"
    shutil.copytree(EXAMPLES, bundles)
    env = {k: v for k, v in os.environ.items() if k != "FN_MAX_TOTAL_MEMORY_BYTES"}
    procs = cgroup / "cgroup.procs"
    command = [sys.executable, "-m", "runnerpool", "runner", "--port", "0"]
    command += ["--bundles", str(bundles), "--wheelhouse", str(wheelhouse())]
    command += ["--state-dir", str(state)]
    # Started in the cgroup before it runs: the test's own waiting is on the runner's output.
    runner = subprocess.Popen(  # noqa: ASYNC220
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        preexec_fn=lambda: procs.write_text("0"),
    )
    client = None
    try:
        assert runner.stdout is not None
        line = await asyncio.to_thread(runner.stdout.readline)
        address = line.removeprefix("runner listening on ").strip()
        client = GrpcRunner(address)
        status = await client.status()
        assert status.custom_status["memory_capacity_mb"] == "256"
        assert status.custom_status["sandbox"].startswith("bubblewrap: ")  # on by default

        def slow(n: int) -> BufferedCall:
            model = Call(
                id=f"slow-{n}", app_id="a", fn_id="slow", image="slow", timeout=30, memory=128
            )
            return BufferedCall(model, body=b"3")

        running = [asyncio.create_task(client.try_exec(slow(n))) for n in range(2)]
        # Both hold their memory once their processes exist.
        for _ in range(600):
            status = await client.status()
            if status.custom_status["memory_used_mb"] == "256":
                break
            await asyncio.sleep(0.05)
        assert status.custom_status["memory_used_mb"] == "256"
        with pytest.raises(RunnerBusyError):
            await client.try_exec(slow(3))
        await asyncio.gather(*running)
    finally:
        if client is not None:
            await client.aclose()
        runner.send_signal(signal.SIGTERM)
        await asyncio.to_thread(runner.wait, 30)
        if runner.stdout is not None:
            runner.stdout.close()
