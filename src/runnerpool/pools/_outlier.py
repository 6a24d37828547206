"""Outlier ejection: runners that keep failing are passed over until a probe says they are back.

The load balancer's passive and active health checking, after Envoy's outlier detection:

* each runner counts its consecutive failures: a failed connect, a connection that died
  (keepalive silence, or closed by the peer), a failed probe. Any success (a connection
  made, a probe answered) resets the count;
* at ``eject_after`` failures in a row the runner is *ejected*: placers pass over it, as
  they pass over a runner that NACKed, so no other function's runner order changes;
* an ejected runner is probed (the ``Status`` RPC) after a back-off, ``base_ejection``
  seconds the first time and doubling with each ejection in a row, up to ``max_ejection``;
  the first probe answered returns it to rotation. A runner that then stays in rotation for
  ``max_ejection`` seconds starts over from ``base_ejection``;
* runners in rotation are probed every ``probe_interval`` seconds too, so a runner that
  died while idle is found without a call paying for it;
* panic threshold: while more than ``max_ejected_share`` of the runners are ejected,
  ejection is ignored and every runner is tried (one bad signal, or a network blip seen from
  this load balancer alone, must not empty the pool).

Ejections and returns are logged at warning level and counted per runner in ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .._resource import AsyncResource

__all__ = ["OutlierDetector", "OutlierPolicy", "RunnerHealth"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutlierPolicy:
    """When runners are ejected, how long for, and when ejection is ignored.

    Attributes:
        eject_after: Consecutive failures that eject a runner.
        base_ejection: Seconds before the first probe of an ejected runner.
        max_ejection: The longest back-off between probes, in seconds; also how long a
            runner stays in rotation before its back-off starts over.
        probe_interval: Seconds between two probes of a runner in rotation.
        probe_timeout: Seconds a probe (connect and ``Status``) may take.
        max_ejected_share: Ejection is ignored while more than this share of the runners is
            ejected (the panic threshold).
    """

    eject_after: int = 2
    base_ejection: float = 1.0
    max_ejection: float = 10.0
    probe_interval: float = 1.0
    probe_timeout: float = 2.0
    max_ejected_share: float = 0.5

    def __post_init__(self) -> None:
        if self.eject_after < 1:
            raise ValueError(f"eject_after must be an integer >= 1, got {self.eject_after!r}")
        for name in ("base_ejection", "max_ejection", "probe_interval", "probe_timeout"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
        if self.max_ejection < self.base_ejection:
            raise ValueError("max_ejection must be at least base_ejection")
        if not 0 <= self.max_ejected_share <= 1:
            raise ValueError(
                f"max_ejected_share must be between 0 and 1, got {self.max_ejected_share!r}"
            )


class RunnerHealth:
    """One runner's health as this load balancer sees it.

    Args:
        address: The runner's address.
        detector: The detector it belongs to (for the panic threshold and the probes).

    Attributes:
        address: The runner's address.
        failures: Consecutive failures so far.
        ejections: Times the runner was ejected, in total.
        returns: Times it came back from an ejection, in total.
        last_failure: Why it last failed, if it did.
    """

    def __init__(self, address: str, detector: OutlierDetector) -> None:
        self.address = address
        self._detector = detector
        self.failures = 0
        self.ejections = 0
        self.returns = 0
        self.last_failure: str | None = None
        self._in_row = 0  # ejections in a row, for the back-off
        self._ejected_at: float | None = None
        self._returned_at = 0.0
        self.probe_at = 0.0

    @property
    def out(self) -> bool:
        """Whether the runner is ejected (whatever the panic threshold says)."""
        return self._ejected_at is not None

    @property
    def ejected(self) -> bool:
        """Whether placers pass over the runner now: ejected, and the pool not in panic."""
        return self._ejected_at is not None and not self._detector.panic

    @property
    def backoff(self) -> float:
        """Seconds until the next probe of this runner, as of its last ejection."""
        policy = self._detector.policy
        return min(policy.max_ejection, policy.base_ejection * 2.0 ** max(0, self._in_row - 1))

    def failure(self, reason: str) -> None:
        """Record a failure; eject the runner at ``eject_after`` in a row."""
        self.failures += 1
        self.last_failure = reason
        if self._ejected_at is None and self.failures >= self._detector.policy.eject_after:
            self._eject(reason)

    def success(self) -> None:
        """Record that the runner answered."""
        self.failures = 0
        if self._ejected_at is not None:
            self._return()

    def probe_failed(self, reason: str) -> None:
        """Record a failed probe: an ejected runner is ejected again, for longer."""
        if self._ejected_at is None:
            self.failure(reason)
            return
        self.failures += 1
        self.last_failure = reason
        self._in_row += 1
        self.probe_at = time.monotonic() + self.backoff

    def _eject(self, reason: str) -> None:
        now = time.monotonic()
        policy = self._detector.policy
        if now - self._returned_at > policy.max_ejection:
            self._in_row = 0
        self._in_row += 1
        self.ejections += 1
        self._ejected_at = now
        self.probe_at = now + self.backoff
        logger.warning(
            "Runner %s ejected after %d failure(s) in a row (%s); probing again in %g s",
            self.address,
            self.failures,
            reason,
            self.backoff,
            extra={"runner_addr": self.address},
        )
        self._detector.changed()

    def _return(self) -> None:
        now = time.monotonic()
        assert self._ejected_at is not None
        out_for = now - self._ejected_at
        self._ejected_at = None
        self._returned_at = now
        self.returns += 1
        self.probe_at = now + self._detector.policy.probe_interval
        logger.warning(
            "Runner %s is back in rotation after %.1f s",
            self.address,
            out_for,
            extra={"runner_addr": self.address},
        )
        self._detector.changed()


def _forget(probing: dict[str, asyncio.Task[None]], address: str, _: object) -> None:
    probing.pop(address, None)


#: Asks one runner for its status; raises if it cannot.
Probe = Callable[[str], Awaitable[object]]


class OutlierDetector(Collector, AsyncResource):
    """The health of a fixed list of runners, their probes, and the panic threshold.

    It is also a Prometheus collector (register it on the registry ``/metrics`` serves):
    ``runnerpool_runner_ejected{runner}`` (1 while ejected), ``runnerpool_runner_failures``
    (consecutive failures), ``runnerpool_runner_ejections_total`` and
    ``runnerpool_runner_returns_total``, and ``runnerpool_runners_panic`` (1 while ejection
    is ignored).

    Args:
        addresses: The runners' addresses.
        probe: Asks a runner for its status (the pool's ``Status`` RPC).
        policy: When to eject and probe.
    """

    def __init__(
        self, addresses: Sequence[str], probe: Probe, policy: OutlierPolicy | None = None
    ) -> None:
        self.policy = OutlierPolicy() if policy is None else policy
        self._probe = probe
        self.runners: dict[str, RunnerHealth] = {}
        for address in addresses:
            self.runners.setdefault(address, RunnerHealth(address, self))
        self.panic = False
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def health(self, address: str) -> RunnerHealth:
        """Return the health of the runner at ``address``."""
        return self.runners[address]

    def changed(self) -> None:
        """Recompute the panic state after an ejection or a return."""
        out = sum(1 for health in self.runners.values() if health.out)
        panic = out > self.policy.max_ejected_share * len(self.runners)
        if panic != self.panic:
            self.panic = panic
            if panic:
                logger.warning(
                    "%d of %d runners ejected: over the panic threshold, ejection is ignored",
                    out,
                    len(self.runners),
                )
            else:
                logger.warning("Panic over: ejected runners are passed over again")
        self._wake.set()

    @property
    def reachable(self) -> int:
        """How many runners are not ejected (whatever the panic threshold says)."""
        return sum(1 for health in self.runners.values() if not health.out)

    def start(self) -> None:
        """Start probing in the background (on the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        """Stop probing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        probing: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                now = time.monotonic()
                for address, health in self.runners.items():
                    if address not in probing and health.probe_at <= now:
                        task = asyncio.create_task(self._probe_one(health))
                        probing[address] = task
                        task.add_done_callback(functools.partial(_forget, probing, address))
                soonest = min(
                    (h.probe_at for a, h in self.runners.items() if a not in probing),
                    default=now + self.policy.probe_interval,
                )
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.05, soonest - time.monotonic())):
                        await self._wake.wait()
        finally:
            for task in probing.values():
                task.cancel()
            await asyncio.gather(*probing.values(), return_exceptions=True)

    async def _probe_one(self, health: RunnerHealth) -> None:
        try:
            async with asyncio.timeout(self.policy.probe_timeout):
                await self._probe(health.address)
        except Exception as exc:
            logger.debug("Probe of %s failed: %r", health.address, exc)
            health.probe_failed(f"probe: {exc!r}")
            if not health.out:
                health.probe_at = time.monotonic() + self.policy.probe_interval
        else:
            health.success()
            health.probe_at = time.monotonic() + self.policy.probe_interval
        self._wake.set()

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        """Yield the per-runner health metrics."""
        ejected = GaugeMetricFamily(
            "runnerpool_runner_ejected",
            "1 while the runner is ejected (passed over by placers), else 0",
            labels=["runner"],
        )
        failures = GaugeMetricFamily(
            "runnerpool_runner_failures",
            "Consecutive failures of the runner (connects, connections, probes)",
            labels=["runner"],
        )
        ejections = CounterMetricFamily(
            "runnerpool_runner_ejections", "Times the runner was ejected", labels=["runner"]
        )
        returns = CounterMetricFamily(
            "runnerpool_runner_returns",
            "Times the runner came back into rotation after an ejection",
            labels=["runner"],
        )
        for address, health in self.runners.items():
            ejected.add_metric([address], 1.0 if health.out else 0.0)
            failures.add_metric([address], health.failures)
            ejections.add_metric([address], health.ejections)
            returns.add_metric([address], health.returns)
        yield ejected
        yield failures
        yield ejections
        yield returns
        yield GaugeMetricFamily(
            "runnerpool_runners_panic",
            "1 while more runners are ejected than the panic threshold allows (ejection ignored)",
            value=1.0 if self.panic else 0.0,
        )
        yield GaugeMetricFamily(
            "runnerpool_runners_reachable",
            "Runners not ejected",
            value=self.reachable,
        )
