"""The hot processes of a runner: idle ones by slot key, their memory, their idle timeouts.

Fn's agent keeps a queue of idle hot containers per slot key and hands out the most recently
used first (LIFO: its caches are the warmest, and the others can expire). Each process holds
its function's memory against the runner's capacity for its whole life, idle or busy; to
make room for a process of another function, idle processes are evicted, least recently used
first.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import TYPE_CHECKING

from .._resource import AsyncResource
from .._tasks import watch
from ..runner import RunnerMetrics

if TYPE_CHECKING:
    from ..runner import Capacity, Reservation
    from ._process import FdkProcess

__all__ = ["HotPool"]

logger = logging.getLogger(__name__)


class HotPool(AsyncResource):
    """The runner's function processes, busy and idle.

    Args:
        connection_idle: Seconds an idle process keeps its connection open.
        metrics: Where evictions and idle expirations are counted.
    """

    def __init__(self, connection_idle: float, metrics: RunnerMetrics | None = None) -> None:
        self._connection_idle = connection_idle
        self._metrics = RunnerMetrics() if metrics is None else metrics
        # Idle processes in the order they went idle, and per slot key (LIFO).
        self._idle_order: OrderedDict[FdkProcess, None] = OrderedDict()
        self._idle: dict[bytes, list[FdkProcess]] = {}
        self._memory: dict[FdkProcess, Reservation] = {}
        self._expiry: dict[FdkProcess, asyncio.TimerHandle] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self._closed = False
        # Calls starting a process of a slot key, oldest first, that take one freed meanwhile.
        self._waiting: dict[bytes, list[asyncio.Future[FdkProcess]]] = {}

    @property
    def processes(self) -> list[FdkProcess]:
        """Every live process, busy or idle."""
        return list(self._memory)

    def idle_count(self, slot_key: bytes | None = None) -> int:
        """How many processes are idle (of one slot key, if given)."""
        if slot_key is None:
            return len(self._idle_order)
        return len(self._idle.get(slot_key, ()))

    def take_idle(self, slot_key: bytes) -> FdkProcess | None:
        """Take the most recently used live idle process of a slot key, if any.

        An idle process that exited on its own (the function called ``os._exit`` in a
        thread, say) is retired on the way.
        """
        idle = self._idle.get(slot_key)
        while idle:
            process = idle.pop()
            if not idle:
                del self._idle[slot_key]
            del self._idle_order[process]
            self._expiry.pop(process).cancel()
            if not process.exited:
                return process
            self.retire(process)
        return None

    def reserve(self, capacity: Capacity, memory_mb: int) -> Reservation | None:
        """Reserve memory for a new process, evicting idle processes if that makes room.

        Returns ``None``, evicting nothing, when even evicting every idle process would not.
        """
        reservation = capacity.try_reserve(memory_mb, calls=0)
        if reservation is not None:
            return reservation
        if capacity.memory_mb is None:
            return None
        idle_mb = sum(self._memory[process].memory_mb for process in self._idle_order)
        if capacity.used_mb - idle_mb + memory_mb > capacity.memory_mb:
            return None
        while (reservation := capacity.try_reserve(memory_mb, calls=0)) is None:
            victim = next(iter(self._idle_order))
            logger.info("Evicting idle process %s to make room", victim.id)
            self._metrics.evicted()
            self._unidle(victim)
            self.retire(victim)
        return reservation

    def adopt(self, process: FdkProcess, memory: Reservation) -> None:
        """Count a newly started process, which holds ``memory`` until it is retired."""
        self._memory[process] = memory

    def put_idle(self, process: FdkProcess, idle_timeout: float) -> None:
        """Make a process idle; it is retired after ``idle_timeout`` seconds unless used.

        Once the pool is closed, a process that finishes its call is retired instead.
        """
        if self._closed or process.exited:
            self.retire(process)
            return
        waiting = self._waiting.get(process.slot_key)
        while waiting:
            future = waiting.pop(0)
            if not future.done():
                # Straight to a call waiting for its own process to start: warm, not idle.
                future.set_result(process)
                return
        process.park(self._connection_idle)
        self._idle.setdefault(process.slot_key, []).append(process)
        self._idle_order[process] = None
        loop = asyncio.get_running_loop()
        self._expiry[process] = loop.call_later(idle_timeout, self._expire, process)

    def wait_for_idle(self, slot_key: bytes) -> asyncio.Future[FdkProcess]:
        """Return a future that gets the next process of the slot key to go idle.

        Withdraw with :meth:`stop_waiting`, whatever happens.
        """
        future: asyncio.Future[FdkProcess] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(slot_key, []).append(future)
        return future

    def stop_waiting(
        self, slot_key: bytes, future: asyncio.Future[FdkProcess]
    ) -> FdkProcess | None:
        """Stop waiting; return the process handed over meanwhile, if one was."""
        waiting = self._waiting.get(slot_key)
        if waiting is not None:
            if future in waiting:
                waiting.remove(future)
            if not waiting:
                del self._waiting[slot_key]
        if future.done() and not future.cancelled():
            return future.result()
        future.cancel()
        return None

    def _expire(self, process: FdkProcess) -> None:
        if process in self._idle_order:
            self._unidle(process)
            logger.debug("Idle process %s expired", process.id)
            self._metrics.expired()
            self.retire(process)

    def _unidle(self, process: FdkProcess) -> None:
        """Take this idle process out of the idle lists (it is not handed to a call)."""
        idle = self._idle[process.slot_key]
        idle.remove(process)
        if not idle:
            del self._idle[process.slot_key]
        del self._idle_order[process]
        self._expiry.pop(process).cancel()

    def retire(self, process: FdkProcess) -> None:
        """Stop a process that is not idle, and give back its memory."""
        memory = self._memory.pop(process, None)
        if memory is not None:
            memory.release()
        task = asyncio.create_task(process.stop())
        watch(task, logger, "Stopping process %s", process.id)
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def aclose(self) -> None:
        """Stop every process, busy or idle, and wait until all are gone."""
        self._closed = True
        for timer in self._expiry.values():
            timer.cancel()
        self._expiry.clear()
        self._idle.clear()
        self._idle_order.clear()
        for process in list(self._memory):
            self.retire(process)
        while self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
