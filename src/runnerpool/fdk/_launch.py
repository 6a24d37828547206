"""Starts an FDK function as Fn's ``fdk`` console script does, under a memory limit.

The runner runs this file with the interpreter of the function's own environment, so it
imports nothing from runnerpool. Usage: ``python _launch.py <memory MB> <runner pid> <max
processes> <func.py> <handler>`` (0: no such limit; runner pid 0: the sandbox sees to it).

Docker kills a container that goes over its memory limit; a process under an address-space
limit (``RLIMIT_AS``) instead sees ``MemoryError``, which the FDK would turn into a plain 502.
To keep Fn's semantics, running out of memory ends the process with :data:`OOM_EXIT`, which
the runner reports as Fn's out-of-memory error (and a process killed by a signal, SIGKILL
included, as that signal). Open files are held to Fn's 350.

The process runs in its own session (so that stopping it stops what it started), which would
let it outlive a runner that is SIGKILLed; it asks the kernel to kill it when the runner dies.
"""

from __future__ import annotations

import ctypes
import inspect
import os
import resource
import signal
import sys
from typing import Any

import fdk  # type: ignore[import-not-found]
from fdk import customer_code

#: The exit code that tells the runner the function ran out of memory (not 137: that is
#: what a shell reports for a SIGKILL, which is not always the memory's doing).
OOM_EXIT = 250
#: Fn's limit on a container's open files (``ulimit -n``).
MAX_OPEN_FILES = 350


def _out_of_memory() -> None:
    # No clean-up, no logging: there is no memory left to do them with.
    os._exit(OOM_EXIT)


class _Function(customer_code.Function):  # type: ignore[misc]
    """The FDK's lazily imported function, with running out of memory made fatal."""

    def handler(self) -> Any:
        try:
            inner = super().handler()
        except MemoryError:
            _out_of_memory()

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = inner(*args, **kwargs)
            except MemoryError:
                _out_of_memory()
            return _guarded(result) if inspect.iscoroutine(result) else result

        return call


async def _guarded(coroutine: Any) -> Any:
    try:
        return await coroutine
    except MemoryError:
        _out_of_memory()


def _limit_memory(megabytes: int) -> None:
    """Allow the function ``megabytes`` of address space beyond what the FDK needs itself."""
    with open("/proc/self/statm") as statm:
        baseline = int(statm.read().split()[0]) * resource.getpagesize()
    limit = baseline + megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _die_with(runner: int) -> None:
    """Be SIGKILLed when the runner dies (Linux's PR_SET_PDEATHSIG), even if it already has."""
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != runner:
        os._exit(1)


def main() -> None:
    """Start the function's FDK server."""
    megabytes, runner, processes = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    module, entrypoint = sys.argv[4], sys.argv[5]
    if runner:
        _die_with(runner)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    files = MAX_OPEN_FILES if hard == resource.RLIM_INFINITY else min(hard, MAX_OPEN_FILES)
    resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
    if processes > 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (processes, processes))
    if megabytes > 0:
        _limit_memory(megabytes)
    fdk.handle(_Function(module, entrypoint=entrypoint))


if __name__ == "__main__":
    main()
