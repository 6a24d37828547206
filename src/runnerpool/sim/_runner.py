"""Simulated runners: memory capacity, hot instances with an idle timeout, virtual run time."""

from __future__ import annotations

import asyncio
import itertools
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass

from .._errors import RunnerBusyError
from .._interfaces import Runner, RunnerCall
from .._model import DEFAULT_IDLE_TIMEOUT
from .._status import RunnerStatus
from ..testing import FakeCall

__all__ = ["DEFAULT_COLD_START", "SimCall", "SimPool", "SimRunner"]

#: Seconds a simulated cold start adds.
DEFAULT_COLD_START = 0.5


@dataclass(eq=False)
class SimCall(FakeCall):
    """A fake call that carries its simulated run time and records what happened to it.

    Attributes:
        duration: Seconds the function runs once started (cold start excluded).
        arrival: When the call arrived, on the virtual clock.
        attempts: Runners offered the call so far.
        committed_at: When a runner took it, or ``None``.
        warm: Whether it started on a hot instance (``None`` until committed).
        runner: The address of the runner that took it.
        ended_at: When its placement ended (placed, or refused with a 503), or ``None``.
    """

    duration: float = 0.0
    arrival: float = 0.0
    attempts: int = 0
    committed_at: float | None = None
    warm: bool | None = None
    runner: str = ""
    ended_at: float | None = None


class SimRunner(Runner):
    """A runner with ``capacity`` MB of memory and hot instances that expire when idle.

    A call whose memory does not fit beside the calls running now gets the 503 NACK
    (:class:`RunnerBusyError`). Otherwise it is committed: on an idle hot instance of its
    function it starts warm; else idle instances are evicted (oldest first) until it fits and
    it starts cold, ``cold_start`` seconds later. It runs ``duration`` virtual seconds, then
    its instance stays hot for ``idle_timeout`` seconds. Idle instances hold their memory.

    A call holds its runner ``overhead`` seconds beyond its run (cold start included): a real
    runner passes the request to the function's process and the response back.

    An offer takes ``latency`` seconds there and back, as a real load balancer's ``TryCall``
    to a real runner does: the runner decides half of it after the offer, and its answer (the
    NACK, or the call's end) reaches the placer the other half later. Meanwhile the placer
    knows nothing of the refusal, and offers other calls to the same runner: a burst of calls
    of one function sees more NACKs than an instant answer would give (docs/decisions.md).

    Args:
        address: The runner's address.
        capacity: Memory in MB.
        idle_timeout: Seconds an idle hot instance lives.
        cold_start: Seconds a cold start adds.
        latency: Seconds an offer's round trip takes (0: the answer is instant).
        overhead: Seconds a call holds the runner beyond its run (0: none).

    Raises:
        ValueError: If ``latency`` or ``overhead`` is negative.
    """

    def __init__(
        self,
        address: str,
        capacity: int,
        *,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        cold_start: float = DEFAULT_COLD_START,
        latency: float = 0.0,
        overhead: float = 0.0,
    ) -> None:
        if latency < 0:
            raise ValueError(f"latency must be >= 0, got {latency}")
        if overhead < 0:
            raise ValueError(f"overhead must be >= 0, got {overhead}")
        self._address = address
        self.capacity = capacity
        self.idle_timeout = idle_timeout
        self.cold_start = cold_start
        self.latency = latency
        self.overhead = overhead
        self.running_memory = 0
        self.idle_memory = 0
        # instance id -> (fn_id, memory, idle since), oldest first; fn_id -> its idle ids.
        self._idle: OrderedDict[int, tuple[str, int, float]] = OrderedDict()
        self._idle_by_fn: dict[str, deque[int]] = {}
        self._ids = itertools.count()
        self.in_flight = 0
        self.max_in_flight = 0
        self.attempts = 0
        self.busy = 0
        self.warm_starts = 0
        self.cold_starts = 0
        self._area = 0.0
        self._last_change = 0.0

    @property
    def address(self) -> str:
        """The runner's address."""
        return self._address

    def in_flight_area(self, now: float) -> float:
        """Return the integral of in-flight calls over time, up to ``now``."""
        return self._area + self.in_flight * (now - self._last_change)

    def _change_in_flight(self, now: float, delta: int) -> None:
        self._area += self.in_flight * (now - self._last_change)
        self._last_change = now
        self.in_flight += delta
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _drop_idle(self, instance: int) -> None:
        fn_id, memory, _ = self._idle.pop(instance)
        self.idle_memory -= memory
        ids = self._idle_by_fn[fn_id]
        ids.remove(instance)
        if not ids:
            del self._idle_by_fn[fn_id]

    def _expire(self, now: float) -> None:
        while self._idle:
            instance, (_, _, since) = next(iter(self._idle.items()))
            if since + self.idle_timeout > now:
                break
            self._drop_idle(instance)

    async def try_exec(self, call: RunnerCall) -> None:
        """Take the call if its memory fits, and run it for its duration.

        Raises:
            RunnerBusyError: If the call's memory does not fit beside the running calls.
        """
        sim = call if isinstance(call, SimCall) else None
        if sim is not None:
            sim.attempts += 1
        if self.latency:
            await asyncio.sleep(self.latency / 2)  # the offer travels to the runner
        now = asyncio.get_running_loop().time()
        self._expire(now)
        self.attempts += 1
        fn_id = call.model.fn_id
        memory = call.model.memory
        ids = self._idle_by_fn.get(fn_id)
        warm = ids is not None
        if ids is not None:
            self._drop_idle(ids[-1])  # the most recently used instance
        else:
            if self.running_memory + memory > self.capacity:
                self.busy += 1
                if self.latency:
                    await asyncio.sleep(self.latency / 2)  # the NACK travels back
                raise RunnerBusyError
            while self.running_memory + self.idle_memory + memory > self.capacity:
                self._drop_idle(next(iter(self._idle)))
        self.running_memory += memory
        if warm:
            self.warm_starts += 1
        else:
            self.cold_starts += 1
        duration = sim.duration if sim is not None else 0.0
        if sim is not None:
            sim.committed_at, sim.warm, sim.runner = now, warm, self._address
        self._change_in_flight(now, 1)
        try:
            await asyncio.sleep(duration + self.overhead + (0.0 if warm else self.cold_start))
        finally:
            end = asyncio.get_running_loop().time()
            self._change_in_flight(end, -1)
            self.running_memory -= memory
            instance = next(self._ids)
            self._idle[instance] = (fn_id, memory, end)
            self._idle_by_fn.setdefault(fn_id, deque()).append(instance)
            self.idle_memory += memory
        if self.latency:
            await asyncio.sleep(self.latency / 2)  # the call's end travels back

    async def status(self) -> RunnerStatus:
        """Return the runner's status with its in-flight count."""
        return RunnerStatus(active_request_count=self.in_flight)

    async def aclose(self) -> None:
        """Nothing to close."""


class SimPool:
    """A runner pool with a fixed list of simulated runners."""

    def __init__(self, runners: Sequence[Runner]) -> None:
        self.members: list[Runner] = list(runners)

    async def runners(self, call: RunnerCall) -> Sequence[Runner]:
        """Return the runners."""
        return self.members

    async def aclose(self) -> None:
        """Nothing to close."""
