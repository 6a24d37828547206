"""System calls per call: ``strace -c`` attached to a running process for a number of calls.

The benchmarks measure throughput and CPU untraced; this module runs a *separate* cell under
``strace -c -f -p PID`` (tracing slows the process several times over, so a traced cell is never
timed) and divides the counts by the calls made. What the issue compares is the writes: the
``sendto``/``write``/``sendmsg``/``writev`` a process makes per call, each one a trip into the
kernel and, on a socket, usually one TCP segment.

When ``strace`` is missing or may not attach (no ptrace permission), :func:`strace_available`
says why and the benchmarks print that instead of the columns.

strace stops the traced process at every system call (``--seccomp-bpf`` does not apply to an
attached process), which slows it several times over, so with many calls in flight the traced
cell batches more per loop turn than an untraced one. ``tool="perf"`` counts the same calls
with ``perf stat`` on the kernel's syscall tracepoints instead: no stop, so the counts are those
of the untraced process (only the write-type calls, ``recvfrom`` and ``epoll_wait``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

__all__ = [
    "PERF_CALLS",
    "TOOL_LABELS",
    "WRITE_CALLS",
    "SyscallCount",
    "parse_perf",
    "parse_summary",
    "strace_available",
    "traced",
]

#: The system calls that put bytes on a socket or a pipe.
WRITE_CALLS = ("sendto", "write", "sendmsg", "writev")

#: The system calls ``perf stat`` counts (one tracepoint each).
PERF_CALLS = (*WRITE_CALLS, "recvfrom", "epoll_wait")

#: How each tool's figures are described under a table.
TOOL_LABELS = {
    "strace": "strace -c -f, separate traced cells; counted = every system call",
    "perf": "perf stat on syscall tracepoints, separate cells; counted = " + ", ".join(PERF_CALLS),
}

#: Seconds to wait for strace to attach, and then to detach and write its summary.
ATTACH_TIMEOUT = 10.0


@dataclass
class SyscallCount:
    """The system calls one process made while a traced cell ran.

    Attributes:
        counts: Calls per system call name.
        calls: Calls (requests) made in the cell; set by the caller once they are done.
    """

    counts: dict[str, int] = field(default_factory=dict)
    calls: int = 0

    @property
    def writes(self) -> int:
        """Write-type system calls in all (:data:`WRITE_CALLS`)."""
        return sum(self.counts.get(name, 0) for name in WRITE_CALLS)

    def per_call(self, name: str | None = None) -> float:
        """System calls per call: writes when ``name`` is None, else that one call's count."""
        total = self.writes if name is None else self.counts.get(name, 0)
        return total / self.calls if self.calls else float("nan")

    @property
    def total_per_call(self) -> float:
        """Every system call per call."""
        return sum(self.counts.values()) / self.calls if self.calls else float("nan")


def parse_summary(text: str) -> dict[str, int]:
    """Read ``strace -c``'s summary table into calls per system call name.

    The table's rows are ``% time, seconds, usecs/call, calls, [errors], syscall``; the
    separator lines and the ``total`` row are skipped.
    """
    counts: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[-1] == "total" or fields[0].startswith("-"):
            continue
        try:
            float(fields[0])
            calls = int(fields[3])
        except ValueError:
            continue  # the header
        counts[fields[-1]] = counts.get(fields[-1], 0) + calls
    return counts


def parse_perf(text: str) -> dict[str, int]:
    """Read ``perf stat -x,`` output into calls per system call name (uncounted ones skipped)."""
    counts: dict[str, int] = {}
    for line in text.splitlines():
        fields = line.split(",")
        if len(fields) < 3 or not fields[2].startswith("syscalls:sys_enter_"):
            continue
        try:
            counts[fields[2].removeprefix("syscalls:sys_enter_")] = int(fields[0])
        except ValueError:
            continue  # <not counted>, <not supported>
    return counts


def strace_available(tool: str = "strace") -> str | None:
    """``None`` when ``tool`` (``strace`` or ``perf``) can count here, else why not (a sentence)."""
    if shutil.which(tool) is None:
        return f"{tool} is not installed: system calls per call are not measured"
    argv = (
        ["strace", "-c", "-o", os.devnull, "true"]
        if tool == "strace"
        else ["perf", "stat", "-x,", "-e", "syscalls:sys_enter_sendto", "true"]
    )
    try:
        probe = subprocess.run(
            argv,
            capture_output=True,
            timeout=ATTACH_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{tool} does not run here ({exc}): system calls per call are not measured"
    if probe.returncode != 0 or (tool == "perf" and b"sys_enter_sendto" not in probe.stderr):
        reason = probe.stderr.decode(errors="replace").strip().splitlines()[:1]
        return f"{tool} cannot count here ({' '.join(reason)}): system calls are not measured"
    return None


@contextmanager
def traced(pid: int, tool: str = "strace") -> Iterator[SyscallCount]:
    """Count the system calls of process ``pid`` (every thread) while the block runs.

    The count is filled in when the block ends; set its ``calls`` to the calls the block made.

    Raises:
        RuntimeError: If strace did not attach in time.
    """
    if tool == "perf":
        with _perf_counted(pid) as counted:
            yield counted
        return
    result = SyscallCount()
    with tempfile.NamedTemporaryFile(prefix="runnerpool-strace-", suffix=".txt") as out:
        proc = subprocess.Popen(
            ["strace", "-c", "-f", "-o", out.name, "-p", str(pid)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_attached(proc)
            yield result
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # detach and write the summary
            try:
                proc.wait(timeout=ATTACH_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()
        with open(out.name, encoding="utf-8", errors="replace") as summary:
            result.counts = parse_summary(summary.read())


@contextmanager
def _perf_counted(pid: int) -> Iterator[SyscallCount]:
    result = SyscallCount()
    events = ",".join(f"syscalls:sys_enter_{name}" for name in PERF_CALLS)
    proc = subprocess.Popen(
        ["perf", "stat", "-x,", "-e", events, "-p", str(pid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(0.2)  # perf opens its counters; it prints nothing until it stops
        if proc.poll() is not None:
            raise RuntimeError(f"perf stat did not start: {proc.communicate()[1].strip()}")
        yield result
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # stop counting and print the counts
        try:
            _, err = proc.communicate(timeout=ATTACH_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    result.counts = parse_perf(err)


def _wait_attached(proc: subprocess.Popen[str]) -> None:
    """Return once strace said it attached; raise if it did not within the timeout.

    strace may print warnings first (a failed feature probe, when it traces its own parent);
    they are skipped.
    """
    attached = threading.Event()
    seen: list[str] = []
    assert proc.stderr is not None
    stderr = proc.stderr

    def read() -> None:
        for line in stderr:
            seen.append(line.strip())
            if "attached" in line:
                attached.set()
                return

    threading.Thread(target=read, daemon=True).start()
    if not attached.wait(ATTACH_TIMEOUT):
        proc.kill()
        raise RuntimeError(f"strace did not attach: {'; '.join(seen) or 'timeout'}")
