"""Several load balancer processes on one port: ``runnerpool lb --workers N``.

One Python process uses one core. With ``--workers N`` the command becomes a small supervisor
that binds ``N`` listening sockets to one port with ``SO_REUSEPORT`` (the first one picks the
port when it is 0, the others bind to it) and forks ``N`` workers, each a whole load balancer
with its own socket, runner connections and placer state, as ``N`` Fn LBs behind one address
would be. The kernel spreads new connections over the sockets by their addresses' hash.

The supervisor:

* announces the ready line once every worker listens;
* on SIGINT or SIGTERM sends SIGTERM to every worker, which drains as a lone load balancer
  does (``--drain-timeout``); a second signal is forwarded too and stops them at once;
* forwards SIGHUP (re-read the functions file) when the workers handle it;
* exits, non-zero and loudly, when a worker dies unasked: it stops the others (they drain)
  rather than restart it, so that an orchestrator restarts a whole load balancer, not one
  that serves on fewer cores than it says, or that dies in a loop unnoticed.

Workers run in a process group of their own, so a terminal's Ctrl-C reaches the supervisor
only (which drains them once), and on Linux they get SIGTERM if the supervisor dies.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, cast

from .._sockets import listening_socket

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

__all__ = ["WorkerContext", "default_workers", "run_workers"]

logger = logging.getLogger(__name__)

#: Linux's ``PR_SET_PDEATHSIG``: the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1
#: The signals the supervisor handles (and forwards).
_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGHUP})


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """What one worker process knows of its siblings.

    Attributes:
        index: This worker's number, from 0.
        count: How many workers serve the port.
        directory: A private directory (mode 0700) where each worker's metrics socket is.
        socket: This worker's listening socket, bound to the shared port.
    """

    index: int
    count: int
    directory: Path
    socket: socket.socket

    def metrics_path(self, index: int) -> Path:
        """Return the Unix socket path where worker ``index`` serves its own metrics."""
        return self.directory / f"worker-{index}.sock"


def default_workers(cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """Return the default number of workers: the cores this process may run on.

    That is the CPUs of its affinity mask, or fewer under a cgroup v2 CPU quota (a container
    limited to 2 CPUs of a 64-core host gets 2 workers, not 64).
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota readable: the affinity mask it is
    return cores


def reuseport_socket(host: str, port: int) -> socket.socket:
    """Return a TCP socket bound to ``host:port`` with ``SO_REUSEPORT``, not yet listening."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted sockets only then.
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def bind_workers(host: str, port: int, count: int) -> list[socket.socket]:
    """Return ``count`` sockets bound to one port (port 0: the first one's).

    Raises:
        OSError: If the port cannot be bound, or something listens on it already.
    """
    if port != 0:
        # SO_REUSEPORT would let this user's other sockets on the port (a second load
        # balancer started by mistake) share its connections silently: bind it once without
        # the option first, which fails if anything is bound to it, as a lone LB would.
        listening_socket(host, port).close()
    sockets = [reuseport_socket(host, port)]
    try:
        chosen = sockets[0].getsockname()[1]
        sockets += [reuseport_socket(host, chosen) for _ in range(count - 1)]
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies (elsewhere: nothing)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _worker_main(
    serve: Callable[[WorkerContext, Callable[[], None]], None],
    context: WorkerContext,
    sockets: list[socket.socket],
    ready_fd: int,
) -> None:
    supervisor = os.getppid()
    os.setpgid(0, 0)  # a terminal's Ctrl-C goes to the supervisor, which forwards it once
    _die_with_parent()
    if os.getppid() != supervisor:
        return  # the supervisor died before the request above could take effect
    # Keep only this worker's socket: a sibling's, held open here, would keep taking its
    # share of connections after that sibling died, and nobody would accept them.
    for sock in sockets:
        if sock is not context.socket:
            sock.close()
    for signum in _SIGNALS:
        signal.signal(signum, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)

    def ready() -> None:
        os.write(ready_fd, b"r")
        os.close(ready_fd)

    serve(context, ready)


class _Supervisor:
    """The parent's state: its workers, and whether it was asked to stop."""

    def __init__(self, workers: list[BaseProcess]) -> None:
        self.workers = workers
        self.stopping = False

    def forward(self, signum: int) -> None:
        for worker in self.workers:
            if worker.exitcode is None and worker.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signum)

    def on_stop(self, signum: int, frame: FrameType | None) -> None:
        if not self.stopping:
            logger.info("Stopping: draining %d worker(s)", len(self.workers))
        self.stopping = True
        self.forward(signal.SIGTERM)

    def on_hangup(self, signum: int, frame: FrameType | None) -> None:
        self.forward(signal.SIGHUP)

    def wait_all(self) -> int:
        """Wait for every worker to end; return 0 if all ended well, else 1."""
        for worker in self.workers:
            worker.join()
        return 0 if all(worker.exitcode == 0 for worker in self.workers) else 1


@contextlib.contextmanager
def _handlers(supervisor: _Supervisor, hangup: bool) -> Iterator[None]:
    handled = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hangup else [])
    previous = {signum: signal.getsignal(signum) for signum in handled}
    signal.signal(signal.SIGINT, supervisor.on_stop)
    signal.signal(signal.SIGTERM, supervisor.on_stop)
    if hangup:
        signal.signal(signal.SIGHUP, supervisor.on_hangup)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _blocked(signals: frozenset[signal.Signals]) -> Iterator[None]:
    """Block ``signals`` inside the block (and unblock them at its end, at the latest)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)


def run_workers(
    count: int,
    host: str,
    port: int,
    serve: Callable[[WorkerContext, Callable[[], None]], None],
    *,
    on_ready: Callable[[str], None] | None = None,
    hangup: bool = False,
) -> int:
    """Serve with ``count`` forked worker processes until they end; return the exit status.

    Args:
        count: How many workers.
        host: Address to listen on.
        port: Port to listen on (0: any free port, the same for every worker).
        serve: Runs one worker's load balancer, in the worker, until it is stopped; it calls
            its second argument once it listens.
        on_ready: Called with the base URL once every worker listens.
        hangup: Forward SIGHUP to the workers (they re-read their functions file).

    Returns:
        0 once every worker drained after SIGINT or SIGTERM; 1 if a worker died unasked or
        ended badly.

    Raises:
        OSError: If the port cannot be bound.
    """
    sockets = bind_workers(host, port, count)
    bound = sockets[0].getsockname()[1]
    directory = Path(tempfile.mkdtemp(prefix="runnerpool-lb-"))  # mode 0700
    forking = multiprocessing.get_context("fork")
    ready_r, ready_w = os.pipe()
    workers: list[BaseProcess] = []
    supervisor = _Supervisor(workers)
    try:
        with _handlers(supervisor, hangup), _blocked(_SIGNALS):
            # Signals wait until every worker is forked: a child must not run the
            # supervisor's handlers (its copy of them) before it resets its own.
            for index, sock in enumerate(sockets):
                context = WorkerContext(index, count, directory, sock)
                worker: BaseProcess = forking.Process(
                    target=_worker_main,
                    args=(serve, context, sockets, ready_w),
                    name=f"runnerpool-lb-{index}",
                )
                worker.start()
                workers.append(worker)
            for sock in sockets:
                sock.close()
            os.close(ready_w)
            ready_w = -1
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
            if not _wait_ready(supervisor, ready_r, count):
                return _failed(supervisor)
            logger.info("Load balancer: %d workers on port %d", count, bound)
            if on_ready is not None:
                on_ready(f"http://{host}:{bound}")
            return _supervise(supervisor)
    finally:
        for sock in sockets:
            sock.close()
        os.close(ready_r)
        if ready_w >= 0:
            os.close(ready_w)
        for worker in workers:
            worker.join()
        shutil.rmtree(directory, ignore_errors=True)


def _wait_ready(supervisor: _Supervisor, ready_r: int, count: int) -> bool:
    """Wait until every worker listens; return False if one ended first or we were stopped."""
    ready = 0
    sentinels = [worker.sentinel for worker in supervisor.workers]
    while ready < count:
        done = wait([ready_r, *sentinels])
        if ready_r in done:
            ready += len(os.read(ready_r, count))
        elif done:
            return False
        if supervisor.stopping:
            return False
    return True


def _supervise(supervisor: _Supervisor) -> int:
    """Wait for the workers; stop them all, loudly, if one dies unasked."""
    remaining = {worker.sentinel: worker for worker in supervisor.workers}
    while remaining:
        for sentinel in wait(list(remaining)):
            ended = remaining.pop(cast("int", sentinel))
            ended.join()
            if not supervisor.stopping:
                return _failed(supervisor, ended)
    return supervisor.wait_all()


def _failed(supervisor: _Supervisor, dead: BaseProcess | None = None) -> int:
    """Stop every worker after one died (or the start failed); return 1."""
    if supervisor.stopping and dead is None:
        # Asked to stop while starting: drain whoever started.
        supervisor.wait_all()
        return 0 if all(w.exitcode == 0 for w in supervisor.workers) else 1
    dead = dead or next((w for w in supervisor.workers if w.exitcode is not None), None)
    logger.critical(
        "Worker %s (pid %s) exited with status %s: stopping the load balancer",
        dead.name if dead else "?",
        dead.pid if dead else "?",
        dead.exitcode if dead else "?",
    )
    supervisor.stopping = True
    supervisor.forward(signal.SIGTERM)
    supervisor.wait_all()
    return 1
