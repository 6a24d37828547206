"""One hot function process: started, made ready, called one call at a time, stopped.

The process analogue of Fn's hot container (fdk-contract.md §1-3): a fresh socket directory,
the FDK started in its own session with Fn's environment, readiness by the ``lsnr.sock``
symlink, one ``POST /call`` at a time over a kept-alive connection, and on stop a SIGKILL to
the whole session and the directory removed (the FDK leaves its socket files behind).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ._cgroups import MAX_PIDS
from ._errors import BundleError, InitFailedError, InitTimeoutError
from ._http import UdsConnection, UdsResponse
from ._output import OutputPipes
from ._sandbox import FUNCTION_DIR, IOFS_DIR, LAUNCHER, PYTHON_DIR

if TYPE_CHECKING:
    from ._bundles import Bundle
    from ._cgroups import ProcessCgroup
    from ._output import OutputSink
    from ._sandbox import Sandbox

__all__ = ["FdkProcess", "launch_command"]

#: The launcher run by the function's interpreter (it imports nothing from runnerpool).
_LAUNCHER = Path(__file__).with_name("_launch.py")
#: Seconds between two looks for the socket while a process starts (it takes ~57 ms).
_READY_POLL = 0.001
#: Bytes per page, for a resident set read in pages.
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
#: Unix socket paths longer than this do not fit ``sockaddr_un``.
_MAX_SOCKET_PATH = 107
#: The exit code of a process that ran out of memory under its address-space limit
#: (``_launch.py``); under a cgroup the kernel kills it, and the cgroup counts the kill.
OOM_EXIT = 250
#: A sandbox (bubblewrap) reports a command killed by signal N as exit code 128 + N.
_SIGNAL_EXIT = 128


def launch_command(
    python: Path | str,
    module: Path | str,
    entrypoint: str,
    memory_limit_mb: int,
    *,
    launcher: Path | str = _LAUNCHER,
    runner_pid: int | None = None,
    max_processes: int = 0,
) -> list[str]:
    """Return the command that starts a bundle's function (``memory_limit_mb`` 0: no limit).

    Run it with the bundle's directory as working directory; the function dies with the
    process ``runner_pid`` (default: this one; 0: the sandbox sees to it).
    """
    return [
        str(python),
        str(launcher),
        str(memory_limit_mb),
        str(os.getpid() if runner_pid is None else runner_pid),
        str(max_processes),
        str(module),
        entrypoint,
    ]


def _check_readable(bundle: Bundle, environment: Path, uid: int | None) -> None:
    """Make sure a function's own uid can read its bundle and environment.

    Raises:
        BundleError: If the bundle's directory is not readable by all.
    """
    if uid is None:
        return
    if environment.stat().st_mode & 0o005 != 0o005:
        # Built before environments were made readable by all: they hold nothing secret.
        environment.chmod(0o755)
    if bundle.path.stat().st_mode & 0o005 != 0o005:
        raise BundleError(
            f"image {bundle.image!r}: its bundle must be readable by all to run in the sandbox "
            "(chmod -R o+rX)"
        )


class FdkProcess:
    """A started function process; create it with :meth:`start`.

    Attributes:
        id: The process's id in logs and status (Fn: the container id).
        slot_key: The slot key of the calls it serves.
        memory_mb: The memory it holds against the runner's capacity.
    """

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        directory: Path,
        slot_key: bytes,
        memory_mb: int,
        pipes: OutputPipes,
        *,
        sandboxed: bool = False,
        cgroup: ProcessCgroup | None = None,
    ) -> None:
        self._process = process
        self._sandboxed = sandboxed
        self._cgroup = cgroup
        self._directory = directory
        self.id = f"fdk-{process.pid}"
        self.slot_key = slot_key
        self.memory_mb = memory_mb
        self._pipes = pipes
        self.output = pipes.sink
        self._connection: UdsConnection | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._killed = False

    @property
    def pid(self) -> int:
        """The process id."""
        return self._process.pid

    @property
    def socket_path(self) -> str:
        """The function's socket."""
        return str(self._directory / "lsnr.sock")

    @classmethod
    async def start(
        cls,
        *,
        python: Path,
        bundle: Bundle,
        env: Mapping[str, str],
        iofs_root: Path,
        slot_key: bytes,
        memory_mb: int,
        memory_limit: bool,
        init_timeout: float,
        output: OutputSink,
        sandbox: Sandbox | None = None,
        app_id: str = "",
        network: bool = True,
    ) -> FdkProcess:
        """Start the function's process and wait until it listens.

        Args:
            python: The interpreter of the bundle's environment.
            bundle: The function.
            env: The function's configuration (``FN_LISTENER`` is set here).
            iofs_root: Where the process's socket directory is made.
            slot_key: The slot key of the calls it will serve.
            memory_mb: The function's memory, in MB.
            memory_limit: Whether to hold the process to ``memory_mb``.
            init_timeout: Seconds it may take to listen (Fn: 5).
            output: Where its output lines go.
            sandbox: The sandbox to run it in (``None``: a plain process of the runner's).
            app_id: Its app (a sandboxed process runs as its app's uid).
            network: Whether a sandboxed process shares the host's network.

        Raises:
            InitTimeoutError: If it did not listen in time (504); it is killed.
            InitFailedError: If it exited first, or its socket is not what Fn accepts (502).
            OSError: If its sandbox's cgroup cannot be made.
        """
        directory = Path(tempfile.mkdtemp(prefix="iofs", dir=iofs_root))
        # The FDK binds the longer of the two names, and links lsnr.sock to it.
        if len(str(directory / "phonylsnr.sock")) > _MAX_SOCKET_PATH:
            shutil.rmtree(directory, ignore_errors=True)
            raise InitFailedError(
                f"socket path {directory / 'phonylsnr.sock'} is too long for a unix socket"
            )
        cgroup: ProcessCgroup | None = None
        if sandbox is None:
            listener = directory / "lsnr.sock"
            pythonpath, home = str(bundle.path), None
            command = launch_command(
                python, bundle.module, bundle.entrypoint, memory_mb if memory_limit else 0
            )
            working_directory = bundle.path
        else:
            uid = sandbox.uid(app_id)
            environment_dir = python.parent.parent
            try:
                _check_readable(bundle, environment_dir, uid)
            except BundleError:
                shutil.rmtree(directory, ignore_errors=True)
                raise
            if uid is not None:
                os.chown(directory, uid, uid)
            try:
                if sandbox.cgroups is not None:
                    cgroup = sandbox.cgroups.create(directory.name, memory_mb, memory_limit)
            except OSError:
                shutil.rmtree(directory, ignore_errors=True)
                raise
            listener, pythonpath, home = Path(IOFS_DIR) / "lsnr.sock", FUNCTION_DIR, "/tmp"
            inner = launch_command(
                f"{PYTHON_DIR}/bin/python",
                Path(FUNCTION_DIR) / bundle.module.relative_to(bundle.path),
                bundle.entrypoint,
                memory_mb if memory_limit and cgroup is None else 0,
                launcher=LAUNCHER,
                runner_pid=0,
                # Without a pids cgroup, the per-app uid's process count is held instead.
                max_processes=MAX_PIDS if cgroup is None and uid is not None else 0,
            )
            command = sandbox.command(
                inner,
                environment=environment_dir,
                bundle=bundle.path,
                launcher=_LAUNCHER,
                socket_dir=directory,
                uid=uid,
                network=network,
            )
            working_directory = Path("/")
        environment = {
            **env,
            "FN_LISTENER": f"unix:{listener}",
            "FN_FORMAT": "http-stream",
            "PYTHONPATH": pythonpath,
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }
        if home is not None:
            environment["HOME"] = home
        pipes = OutputPipes(output)
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                cwd=working_directory,
                env=environment,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=pipes.stdout,
                stderr=pipes.stderr,
                # Its own session: a stop kills whatever the function started too.
                start_new_session=True,
                # In its cgroup before it runs anything: what it starts is counted from the start.
                preexec_fn=None if cgroup is None else cgroup.join,
            )
        except BaseException:
            pipes.discard()
            shutil.rmtree(directory, ignore_errors=True)
            if cgroup is not None:
                cgroup.remove()
            raise
        self = cls(
            process,
            directory,
            slot_key,
            memory_mb,
            pipes,
            sandboxed=sandbox is not None,
            cgroup=cgroup,
        )
        try:
            await pipes.start()
            await self._wait_ready(time.monotonic() + init_timeout)
        except BaseException:
            await self.stop()
            raise
        return self

    async def _wait_ready(self, deadline: float) -> None:
        socket_path = self._directory / "lsnr.sock"
        while True:
            if self._process.returncode is not None:
                raise InitFailedError()
            try:
                link = socket_path.lstat()
            except FileNotFoundError:
                link = None
            if link is not None:
                # Fn's checkSocketDestination: a relative link inside the directory, to a socket.
                if stat.S_ISLNK(link.st_mode) and os.path.dirname(os.readlink(socket_path)):
                    raise InitFailedError()
                try:
                    target = socket_path.stat()
                except FileNotFoundError:
                    raise InitFailedError() from None
                if not stat.S_ISSOCK(target.st_mode):
                    raise InitFailedError()
                return
            if time.monotonic() >= deadline:
                raise InitTimeoutError()
            await asyncio.sleep(_READY_POLL)

    async def call(
        self, headers: Sequence[tuple[str, str]], body: bytes, max_body: int | None
    ) -> UdsResponse:
        """Send one call and return the function's response.

        Raises:
            BodyTooLargeError: If the response body is larger than ``max_body``.
            ConnectionError: If the connection broke (the process may have died).
            OSError: If the process's socket does not accept a connection.
        """
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self._connection is None:
            self._connection = await UdsConnection.open(self.socket_path)
        connection = self._connection
        try:
            response = await connection.post("/call", headers, body, max_body)
        finally:
            if not connection.reusable:
                self.close_connection()
        return response

    async def settle_output(self) -> None:
        """Take in what the function wrote before it answered: it belongs to the call."""
        await self._pipes.settle()

    def park(self, connection_idle: float) -> None:
        """The process goes idle: close its connection after ``connection_idle`` seconds.

        The FDK's keep-alive timer busy-spins a core from 75 s after a response on an open
        connection (fdk-contract.md §5.1), so an idle connection must not stay open that long.
        """
        if self._connection is not None:
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(connection_idle, self.close_connection)

    @property
    def connected(self) -> bool:
        """Whether the runner holds a connection to the process."""
        return self._connection is not None

    def close_connection(self) -> None:
        """Close the connection to the process, if open."""
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def exit_code(self, wait: float) -> int | None:
        """Return the process's exit code, waiting up to ``wait`` seconds for it to end.

        A process killed by signal N has code 128 + N, as a container's (and a shell's).
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._process.wait()
        code = self._process.returncode
        if code is not None and code < 0:
            return _SIGNAL_EXIT - code
        return code

    def exit_signal(self) -> signal.Signals | None:
        """Return the signal that killed the process, if one did."""
        code = self._process.returncode
        if code is None:
            return None
        number = -code if code < 0 else code - _SIGNAL_EXIT if self._sandboxed else 0
        try:
            return signal.Signals(number) if number > 0 else None
        except ValueError:
            return None

    def memory_used(self) -> int:
        """Return the bytes the process uses now: its cgroup's charge, else its resident set.

        0 once it is gone. Without a cgroup, a sandboxed process's figure is its sandbox
        launcher's, not the function's: the operator's view of memory then needs cgroups.
        """
        cgroup = self._cgroup
        if cgroup is not None:
            name = "memory.current" if cgroup.unified else "memory.usage_in_bytes"
            with contextlib.suppress(OSError, ValueError):
                return int((cgroup.memory / name).read_text())
        with contextlib.suppress(OSError, ValueError, IndexError):
            pages = int(Path(f"/proc/{self.pid}/statm").read_text().split()[1])
            return pages * _PAGE_SIZE
        return 0

    def out_of_memory(self) -> bool:
        """Whether it ended for running out of its memory (its cgroup's kill, or the launcher)."""
        if self._cgroup is not None and self._cgroup.oom_killed():
            return True
        return self._process.returncode == OOM_EXIT

    @property
    def exited(self) -> bool:
        """Whether the process has ended."""
        return self._process.returncode is not None

    @property
    def killed(self) -> bool:
        """Whether the runner killed it (an exit the runner caused is not the function's)."""
        return self._killed

    async def stop(self) -> None:
        """Kill the process and everything it started, and remove its socket directory.

        Fn removes a container with force (SIGKILL, no grace); so does this.
        """
        self.close_connection()
        if self._process.returncode is None:
            self._killed = True
        # The whole session: whatever the function started goes too, even if it has exited.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        if self._cgroup is not None:
            self._cgroup.kill_all()
        await self._process.wait()
        # The pipes end when the process (and its session) is gone.
        await self._pipes.wait_closed(1.0)
        shutil.rmtree(self._directory, ignore_errors=True)
        if self._cgroup is not None:
            await asyncio.to_thread(self._cgroup.remove)
