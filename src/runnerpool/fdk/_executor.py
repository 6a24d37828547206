"""The executor of Fn FDK functions: each call runs in a hot local process of its function.

Admission follows Fn's agent with its non-blocking resource tracker: a call takes the most
recently used idle process of its slot key; with none idle, it reserves its function's
memory for a new process (evicting idle processes of other functions if that makes room); if
nothing makes room, the runner NACKs and the load balancer tries another runner.

Deliberate differences from Fn: a 502 from the function carries the function's error text
(Fn discards it), so a broken ``func.py`` says why; the call's timeout counts from the call's
start on the runner, cold start included.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .. import _tracing
from .._errors import APIError, CallTimeoutError, FunctionFailedError, ResponseTooLargeError
from .._headers import HOP_BY_HOP
from .._model import DEFAULT_IDLE_TIMEOUT, DEFAULT_MEMORY, DEFAULT_TIMEOUT
from .._resource import AsyncResource
from .._syslog import SyslogShipper
from .._tasks import watch
from .._unsafe_env import unsafe_config_key
from ..runner import RunnerMetrics
from ._errors import (
    BundleError,
    ContainerExitError,
    InvalidResponseError,
    OutOfMemoryError,
    ResponseReceiveError,
)
from ._function_log import FunctionLog
from ._http import BodyTooLargeError
from ._iofs import IofsRoot
from ._output import LogBook, OutputSink
from ._pool import HotPool
from ._process import FdkProcess
from ._sandbox import host_sandbox, network_allowed
from ._slot_key import slot_key as compute_slot_key

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

    from .._interfaces import LogWriter
    from .._model import Call
    from ..runner import Capacity, ContainerLogs, Execution, Reservation
    from ._bundles import Bundle, Bundles
    from ._environments import Environments
    from ._sandbox import Sandbox

__all__ = ["DEFAULT_INIT_TIMEOUT", "FdkExecutor"]

logger = logging.getLogger(__name__)

#: The listener Fn's containers see; the slot key is computed with it, as Fn does.
_FN_LISTENER = "unix:/tmp/iofs/lsnr.sock"
#: Hop-by-hop headers (Go's StripHopHeaders), and those the transport sets itself.
_NOT_FORWARDED = HOP_BY_HOP | {"content-length", "host"}
#: What a header name or value written to the function's socket may not hold: line breaks
#: and NUL (and, in a name, ``:`` and white space), or anything beyond Latin-1.
_BAD_NAME = re.compile(r"[\x00-\x20:\x7f]|[^\x00-\xff]")
_BAD_VALUE = re.compile(r"[\r\n\x00]|[^\x00-\xff]")
#: Seconds a new process may take to listen, as Fn (then 504).
DEFAULT_INIT_TIMEOUT = 5.0
#: How much of a failing function's 502 body its error message carries.
_ERROR_TEXT = 1000


class _Ticket:
    """What an admitted call holds: a call slot, and an idle process or memory for a new one."""

    __slots__ = (
        "bundle",
        "call",
        "config",
        "idle_timeout",
        "memory",
        "network",
        "pool",
        "process",
        "slot_key",
    )

    def __init__(
        self,
        pool: HotPool,
        call: Reservation,
        slot_key: bytes,
        bundle: Bundle | None,
        config: dict[str, str],
        idle_timeout: float,
        process: FdkProcess | None,
        network: bool = True,
    ) -> None:
        self.pool = pool
        self.network = network
        self.idle_timeout = idle_timeout
        self.call = call
        self.slot_key = slot_key
        self.bundle = bundle
        self.config = config
        self.process = process
        #: Memory for a new process, when the call holds no process.
        self.memory: Reservation | None = None

    def release(self) -> None:
        """Give back what the call did not use up (the executor returns used processes)."""
        self.call.release()
        if self.memory is not None:
            self.memory.release()
            self.memory = None
        if self.process is not None:
            self.pool.put_idle(self.process, self.idle_timeout)
            self.process = None


class FdkExecutor(AsyncResource):
    """Runs calls in hot processes of Fn FDK functions, one call at a time per process.

    Args:
        bundles: Resolves a call's image to its function bundle.
        environments: Prepares each bundle's Python environment.
        iofs_root: Where processes' socket directories are made (default: a fresh directory
            under the system's temporary directory, removed on close; those of runners that
            died are removed first).
        init_timeout: Seconds a new process may take to listen (Fn: 5; then 504).
        connection_idle: Seconds an idle process keeps its connection (Fn: 1; the FDK spins
            a core on a connection idle for 75 s).
        max_response_size: Largest response body, in bytes (``None``: no limit).
        memory_limit: Whether a process is held to its function's memory.
        log_book: Keeps the functions' output for ``StreamLogs``.
        function_log: Logs the functions' lines in the runner's log and ships them to their
            apps' ``syslog_url`` (default: both, with Fn's bounds).
        sandbox: Runs each process in its own sandbox. ``"auto"`` (the default): the host's
            (:meth:`Sandbox.detect`), or none, logged as an error, where it cannot be made;
            ``None``: plain processes of the runner's user, which can see and signal each
            other and the runner (``--no-sandbox``).
        sandbox_state: What the runner's status says about the sandbox when there is none.
        metrics: Where cold starts and evictions are counted (the runner's; give the runner
            service the same); also what :meth:`hot_processes` feeds.
    """

    def __init__(
        self,
        bundles: Bundles,
        environments: Environments,
        *,
        iofs_root: Path | None = None,
        init_timeout: float = DEFAULT_INIT_TIMEOUT,
        connection_idle: float = 5.0,
        max_response_size: int | None = None,
        memory_limit: bool = True,
        log_book: LogBook | None = None,
        function_log: FunctionLog | None = None,
        sandbox: Sandbox | Literal["auto"] | None = "auto",
        sandbox_state: str = "off",
        metrics: RunnerMetrics | None = None,
    ) -> None:
        self.bundles = bundles
        self.metrics = RunnerMetrics() if metrics is None else metrics
        if sandbox == "auto":
            sandbox, sandbox_state = host_sandbox()
        self.sandbox = sandbox
        self._sandbox_state = sandbox_state if sandbox is None else sandbox.describe()
        self.environments = environments
        self._own_root: IofsRoot | None = None
        if iofs_root is None:
            self._own_root = IofsRoot()
            iofs_root = self._own_root.path
        #: Where the processes' socket directories are.
        self.iofs_root = iofs_root
        self._init_timeout = init_timeout
        self._max_response = max_response_size
        self._memory_limit = memory_limit
        self.log_book = LogBook() if log_book is None else log_book
        self.function_log = FunctionLog(SyslogShipper()) if function_log is None else function_log
        self.pool = HotPool(connection_idle, self.metrics)
        self._preparing: asyncio.Task[None] | None = None
        # Starts that go on after their call took another process.
        self._starting: set[asyncio.Future[FdkProcess]] = set()
        #: Processes started so far (each a cold start: a call found no idle process).
        self.process_starts = 0

    # -- Admission ------------------------------------------------------------------------

    def admit(
        self,
        model: Call,
        slot_key: bytes | None,
        extensions: Mapping[str, str],
        capacity: Capacity,
    ) -> _Ticket | None:
        """Take an idle process of the call's slot key, or memory for a new one.

        Raises:
            BundleError: If the call's image names no function bundle.
            APIError: If its config holds a variable a function may not get (400).
        """
        for key, value in model.config.items():
            problem = unsafe_config_key(key, value)
            if problem is not None:
                raise APIError(f"invalid config: {problem}", status_code=400)
        config = process_config(model)
        if slot_key is None:
            slot_key = compute_slot_key(
                replace(model, config={**config, "FN_LISTENER": _FN_LISTENER})
            )
        call = capacity.try_reserve(0, calls=1)
        if call is None:
            return None
        process = self.pool.take_idle(slot_key)
        try:
            # Only a new process needs the bundle: a warm call skips the file system.
            bundle = self.bundles.resolve(model.image) if process is None else None
        except BundleError:
            call.release()
            raise
        ticket = _Ticket(
            self.pool,
            call,
            slot_key,
            bundle,
            config,
            model.idle_timeout or DEFAULT_IDLE_TIMEOUT,
            process,
            network_allowed(model.annotations),
        )
        if process is None:
            ticket.memory = self.pool.reserve(capacity, model.memory or DEFAULT_MEMORY)
            if ticket.memory is None:
                call.release()
                return None
        return ticket

    # -- Execution ------------------------------------------------------------------------

    async def execute(self, execution: Execution) -> None:
        """Run the call in its process (starting one first if the call holds none).

        Raises:
            InitTimeoutError: A new process did not listen in time (504).
            InitFailedError: A new process exited before it listened (502).
            CallTimeoutError: The call outlived its timeout; the process is killed (504).
            FunctionFailedError: The function answered 502; the process is kept.
            ResponseTooLargeError: The response body was too large; the process is killed.
            InvalidResponseError: The function answered another status; it is killed (502).
            OutOfMemoryError: The process ran out of its memory (502).
            ContainerExitError: The process exited mid-call (502).
            ResponseReceiveError: The connection broke mid-call (502).
        """
        ticket = execution.admission
        if not isinstance(ticket, _Ticket):
            raise TypeError("FdkExecutor runs only the calls it admitted")
        model = execution.model
        # Refused before a process is taken: a bad header is the caller's fault, not the
        # process's, which stays idle for the next call.
        headers = _forwarded_headers(model)
        body = b"".join([chunk async for chunk in execution.body])
        if ticket.process is None:
            ticket.process = await self._start_or_take(ticket, model, execution.stderr)
        process = ticket.process
        keep = False
        process.output.begin(model.id, execution.stderr)
        try:
            remaining = (
                None if execution.deadline is None else execution.deadline - time.monotonic()
            )
            async with asyncio.timeout(remaining):
                response = await process.call(
                    _with_deadline(headers, model, remaining), body, self._max_response
                )
            await process.settle_output()
            keep = response.status in (200, 502, 504)
        except TimeoutError:
            raise CallTimeoutError from None
        except BodyTooLargeError:
            raise ResponseTooLargeError from None
        except (ConnectionError, OSError) as exc:
            raise await self._broken(process, model) from exc
        finally:
            process.output.end()
            ticket.process = None
            if keep:
                self.pool.put_idle(process, ticket.idle_timeout)
            else:
                self.pool.retire(process)
        if response.status == 502:
            text = response.body[:_ERROR_TEXT].decode(errors="replace").strip()
            if text:
                execution.stderr.write(response.body + b"\n")
            raise FunctionFailedError(f"function failed: {text}" if text else None)
        if response.status == 504:
            raise CallTimeoutError
        if response.status != 200:
            raise InvalidResponseError
        for name, value in response.headers:
            if name.lower() not in _NOT_FORWARDED:
                execution.response.add_header(name, value)
        execution.response.write_header(200)
        if response.body:
            await execution.response.write(response.body)

    async def _start_or_take(self, ticket: _Ticket, model: Call, stderr: LogWriter) -> FdkProcess:
        """Start a process for the call, or take one of its slot key that goes idle first.

        As Fn's waiting calls do: a process that frees up while this call's own starts serves
        this call at once (a warm call is milliseconds, a start about 80), and the new process
        goes idle for the next call when it is ready.
        """
        # The start owns the memory from here on: it gives it to the process, or back.
        memory, ticket.memory = ticket.memory, None
        assert memory is not None
        assert ticket.bundle is not None
        starting = self._start(ticket, model, memory, stderr)
        trace = _tracing.active  # a cold start is a span of the call's trace
        start = asyncio.ensure_future(
            starting if trace is None else trace.process_start(model, starting)
        )
        handed = self.pool.wait_for_idle(ticket.slot_key)
        try:
            await asyncio.wait({start, handed}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            taken = self.pool.stop_waiting(ticket.slot_key, handed)
            if taken is not None:
                self.pool.put_idle(taken, ticket.idle_timeout)
            # A start still going is stopped; one already done leaves its process idle.
            start.cancel()
            self._finish_in_background(start, ticket.idle_timeout)
            raise
        taken = self.pool.stop_waiting(ticket.slot_key, handed)
        if taken is None:
            return start.result()
        self._finish_in_background(start, ticket.idle_timeout)
        return taken

    def _finish_in_background(self, start: asyncio.Future[FdkProcess], idle_timeout: float) -> None:
        """Let a start whose call took another process end: ready, it goes idle."""

        def done(future: asyncio.Future[FdkProcess]) -> None:
            self._starting.discard(future)
            if future.cancelled():
                return
            error = future.exception()
            if error is not None:
                logger.warning("A process started ahead of need failed: %s", error)
                return
            self.pool.put_idle(future.result(), idle_timeout)

        self._starting.add(start)
        start.add_done_callback(done)

    async def _start(
        self, ticket: _Ticket, model: Call, memory: Reservation, stderr: LogWriter
    ) -> FdkProcess:
        """Start a process holding ``memory``; on failure, give the memory back."""
        bundle = ticket.bundle
        assert bundle is not None
        output = OutputSink(
            self.log_book, model.app_id, model.fn_id, "", self.function_log.process(model)
        )
        try:
            python = await self.environments.prepare(bundle)
            self.metrics.cold_start()
            process = await FdkProcess.start(
                python=python,
                bundle=bundle,
                env=ticket.config,
                iofs_root=self.iofs_root,
                slot_key=ticket.slot_key,
                memory_mb=model.memory or DEFAULT_MEMORY,
                memory_limit=self._memory_limit,
                init_timeout=self._init_timeout,
                output=output,
                sandbox=self.sandbox,
                app_id=model.app_id,
                network=ticket.network,
            )
        except BaseException:
            memory.release()
            # What the process said before it failed is the user's only clue.
            for line in output.spare:
                stderr.write(line)
            raise
        output.container_id = process.id
        self.pool.adopt(process, memory)
        self.process_starts += 1
        return process

    async def _broken(self, process: FdkProcess, model: Call) -> Exception:
        """Tell why a call's connection broke: out of memory, an exit, or the transport."""
        code = await process.exit_code(1.0)
        if code is None:
            return ResponseReceiveError()
        if process.out_of_memory() and not process.killed:
            logger.info("Process %s of %s ran out of memory", process.id, model.fn_id)
            return OutOfMemoryError()
        killer = process.exit_signal()
        return ContainerExitError(code, None if killer is None else killer.name)

    # -- Status, logs, lifecycle -------------------------------------------------------------

    def report(self) -> dict[str, str]:
        """Return the executor's state for the runner's status: processes and environments."""
        report = {
            "processes": str(len(self.pool.processes)),
            "idle_processes": str(self.pool.idle_count()),
            "process_starts": str(self.process_starts),
            "sandbox": self._sandbox_state,
        }
        for key, state in self.environments.states().items():
            report[f"environment {key}"] = state
        if self.function_log.syslog is not None:
            report["syslog_dropped_lines"] = str(self.function_log.syslog.dropped)
        return report

    def hot_processes(self) -> tuple[int, int, int]:
        """Return the processes busy, the processes idle, and the bytes they use now."""
        processes = self.pool.processes
        idle = self.pool.idle_count()
        return len(processes) - idle, idle, sum(process.memory_used() for process in processes)

    def stream(self, config: Mapping[str, str]) -> AsyncIterator[Sequence[ContainerLogs]]:
        """Yield the functions' output for ``StreamLogs``."""
        return self.log_book.stream(config)

    def prepare_ahead(self) -> asyncio.Task[None]:
        """Start preparing every bundle's environment now, before calls need them."""

        async def prepare() -> None:
            for image in self.bundles.images():
                try:
                    await self.environments.prepare(self.bundles.resolve(image))
                except Exception as exc:
                    logger.warning("Preparing %s failed: %s", image, exc)

        if self._preparing is None:
            self._preparing = asyncio.create_task(prepare())
            watch(self._preparing, logger, "Preparing environments")
        return self._preparing

    async def aclose(self) -> None:
        """Stop every process and remove their socket directories."""
        if self._preparing is not None:
            self._preparing.cancel()
        for start in list(self._starting):
            start.cancel()
        await asyncio.gather(*self._starting, return_exceptions=True)
        await self.pool.aclose()
        await self.function_log.aclose()
        if self.sandbox is not None and self.sandbox.cgroups is not None:
            self.sandbox.cgroups.close()
        if self._own_root is not None:
            # Once only: a second os.close of the lock's fd could close an unrelated file.
            self._own_root.remove()
            self._own_root = None


def process_config(model: Call) -> dict[str, str]:
    """Return the environment of a call's process: its config with Fn's ``FN_*`` variables.

    A call from Fn's (or runnerpool's) load balancer already carries them; a call without them
    gets Fn's values.
    """
    return {
        "FN_APP_ID": model.app_id,
        "FN_FN_ID": model.fn_id,
        "FN_MEMORY": str(model.memory or DEFAULT_MEMORY),
        "FN_TYPE": "sync",
        **model.config,
        "FN_FORMAT": "http-stream",
    }


def _forwarded_headers(model: Call) -> list[tuple[str, str]]:
    """Return the call's headers to write to the function, each checked.

    Raises:
        APIError: 400, for a name or value that would break the request's framing on the
            function's socket (CR, LF or NUL; a name with ``:`` or white space) or that is
            not Latin-1, the bytes HTTP/1.1 carries. Nothing is written.
    """
    headers = [
        (name, value)
        for name, values in model.headers.items()
        if name.lower() not in _NOT_FORWARDED and not name.lower().startswith("fn-call-id")
        for value in values
    ]
    for name, value in headers:
        # A CR or LF would end the header line and let the rest of the value be read as
        # further headers or a second request on the function's socket (header injection).
        if not name or _BAD_NAME.search(name) or _BAD_VALUE.search(value):
            raise APIError(
                f"header {name!r} has a name or value with CR, LF or another character "
                "that cannot be sent to the function",
                status_code=400,
            )
    return headers


def _with_deadline(
    headers: list[tuple[str, str]], model: Call, remaining: float | None
) -> list[tuple[str, str]]:
    deadline = datetime.now(UTC) + timedelta(seconds=remaining or DEFAULT_TIMEOUT)
    return [
        *headers,
        ("Fn-Call-Id", model.id),
        ("Fn-Deadline", deadline.strftime("%Y-%m-%dT%H:%M:%SZ")),
    ]
