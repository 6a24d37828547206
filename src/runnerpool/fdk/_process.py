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

from ._errors import InitFailedError, InitTimeoutError
from ._http import UdsConnection, UdsResponse
from ._output import OutputPipes

if TYPE_CHECKING:
    from ._bundles import Bundle
    from ._output import OutputSink

__all__ = ["FdkProcess", "launch_command"]

#: The launcher run by the function's interpreter (it imports nothing from runnerpool).
_LAUNCHER = Path(__file__).with_name("_launch.py")
#: Seconds between two looks for the socket while a process starts (it takes ~57 ms).
_READY_POLL = 0.001
#: Unix socket paths longer than this do not fit ``sockaddr_un``.
_MAX_SOCKET_PATH = 107
#: The exit code of a process that ran out of memory (see ``_launch.py``), or was SIGKILLed.
OOM_EXIT = 137


def launch_command(python: Path, bundle: Bundle, memory_limit_mb: int) -> list[str]:
    """Return the command that starts a bundle's function (``memory_limit_mb`` 0: no limit).

    Run it with the bundle's directory as working directory; the function dies with the
    process that runs the command.
    """
    return [
        str(python),
        str(_LAUNCHER),
        str(memory_limit_mb),
        str(os.getpid()),
        str(bundle.module),
        bundle.entrypoint,
    ]


class FdkProcess:
    """A started function process; create it with :meth:`start`.

    Attributes:
        id: The process's id in logs and status (Fn: the container id).
        slot_key: The slot key of the calls it serves.
        memory_mb: The memory it holds against the runner's capacity.
        last_used: When its last call ended (``time.monotonic()``).
    """

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        directory: Path,
        slot_key: bytes,
        memory_mb: int,
        pipes: OutputPipes,
    ) -> None:
        self._process = process
        self._directory = directory
        self.id = f"fdk-{process.pid}"
        self.slot_key = slot_key
        self.memory_mb = memory_mb
        self._pipes = pipes
        self.output = pipes.sink
        self.last_used = time.monotonic()
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

        Raises:
            InitTimeoutError: If it did not listen in time (504); it is killed.
            InitFailedError: If it exited first, or its socket is not what Fn accepts (502).
        """
        directory = Path(tempfile.mkdtemp(prefix="iofs", dir=iofs_root))
        socket_path = directory / "lsnr.sock"
        # The FDK binds the longer of the two names, and links lsnr.sock to it.
        if len(str(directory / "phonylsnr.sock")) > _MAX_SOCKET_PATH:
            shutil.rmtree(directory, ignore_errors=True)
            raise InitFailedError(
                f"socket path {directory / 'phonylsnr.sock'} is too long for a unix socket"
            )
        environment = {
            **env,
            "FN_LISTENER": f"unix:{socket_path}",
            "FN_FORMAT": "http-stream",
            "PYTHONPATH": str(bundle.path),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        }
        pipes = OutputPipes(output)
        try:
            process = await asyncio.create_subprocess_exec(
                *launch_command(python, bundle, memory_mb if memory_limit else 0),
                cwd=bundle.path,
                env=environment,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=pipes.stdout,
                stderr=pipes.stderr,
                # Its own session: a stop kills whatever the function started too.
                start_new_session=True,
            )
        except BaseException:
            pipes.discard()
            shutil.rmtree(directory, ignore_errors=True)
            raise
        self = cls(process, directory, slot_key, memory_mb, pipes)
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
        self.last_used = time.monotonic()
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
        """Return the process's exit code, waiting up to ``wait`` seconds for it to end."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._process.wait()
        return self._process.returncode

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
        await self._process.wait()
        # The pipes end when the process (and its session) is gone.
        await self._pipes.wait_closed(1.0)
        shutil.rmtree(self._directory, ignore_errors=True)
