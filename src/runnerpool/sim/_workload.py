"""A synthetic Azure-Functions-like workload (Shahrad et al., ATC 2020; research notes §5.5).

* Popularity: Zipf-like weights over functions, in random order.
* Triggers: 15.6% of functions are timers (periodic, random phase); of the others, 40% are
  bursty (bursts of a geometric number of calls, so the inter-arrival CV is above 1) and
  the rest Poisson.
* Durations: each function's mean is Lognormal(-0.38, 2.36) seconds (capped); each call
  multiplies it by a mean-one lognormal noise.
* Memory: each function's memory is Burr(c=11.652, k=0.221, lambda=107.083) MB (capped).
* Rates are scaled so the offered load (calls/s x mean duration x memory, summed) is
  ``utilisation`` of the runners' total memory.

Everything comes from one ``random.Random(seed)``: the same arguments give the same trace.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal

__all__ = ["Arrival", "Function", "Workload", "burr", "generate_workload"]

Trigger = Literal["timer", "bursty", "poisson"]

TIMER_SHARE = 0.156
BURSTY_SHARE = 0.40
DURATION_MU = -0.38
DURATION_SIGMA = 2.36
BURR_C, BURR_K, BURR_LAMBDA = 11.652, 0.221, 107.083
CALL_NOISE_SIGMA = 0.5
BURST_MEAN = 5.0
BURST_GAP = 0.05


@dataclass(frozen=True, slots=True)
class Function:
    """One function of the workload.

    Attributes:
        fn_id: Its id.
        trigger: ``"timer"``, ``"bursty"`` or ``"poisson"``.
        rate: Its mean calls per second.
        mean_duration: Its mean run time, seconds.
        memory: Its memory, MB.
    """

    fn_id: str
    trigger: Trigger
    rate: float
    mean_duration: float
    memory: int


@dataclass(frozen=True, slots=True)
class Arrival:
    """One call: when it arrives, its function, memory and run time."""

    time: float
    fn_id: str
    memory: int
    duration: float


@dataclass(frozen=True, slots=True)
class Workload:
    """The functions and the arrivals, sorted by time."""

    functions: tuple[Function, ...]
    arrivals: tuple[Arrival, ...]


def burr(rng: random.Random, c: float, k: float, scale: float) -> float:
    """Draw from a Burr XII distribution by inversion: ``F(x) = 1 - (1 + (x/scale)^c)^-k``."""
    u = rng.random()
    return float(scale * ((1.0 - u) ** (-1.0 / k) - 1.0) ** (1.0 / c))


def generate_workload(
    seed: int,
    *,
    duration: float,
    functions: int,
    capacity_mb: float,
    utilisation: float,
    zipf_s: float = 1.1,
    max_mean_duration: float = 30.0,
    max_call_duration: float = 120.0,
    memory_range: tuple[int, int] = (64, 1024),
) -> Workload:
    """Generate a workload of ``functions`` functions over ``duration`` virtual seconds.

    Args:
        seed: The seed.
        duration: The length of the trace, seconds.
        functions: How many functions.
        capacity_mb: The runners' total memory, MB.
        utilisation: The offered load as a share of ``capacity_mb``.
        zipf_s: The exponent of the popularity weights ``1 / rank**s``.
        max_mean_duration: The cap of a function's mean duration, seconds.
        max_call_duration: The cap of one call's duration, seconds.
        memory_range: The bounds of a function's memory, MB.
    """
    rng = random.Random(seed)
    ranks = list(range(1, functions + 1))
    rng.shuffle(ranks)
    drafts: list[tuple[str, Trigger, float, float, int]] = []
    for index, rank in enumerate(ranks):
        roll = rng.random()
        trigger: Trigger = (
            "timer"
            if roll < TIMER_SHARE
            else "bursty"
            if roll < TIMER_SHARE + (1 - TIMER_SHARE) * BURSTY_SHARE
            else "poisson"
        )
        mean = min(max_mean_duration, max(0.01, rng.lognormvariate(DURATION_MU, DURATION_SIGMA)))
        low, high = memory_range
        memory = int(min(high, max(low, burr(rng, BURR_C, BURR_K, BURR_LAMBDA))))
        drafts.append((f"fn-{index:04d}", trigger, 1.0 / rank**zipf_s, mean, memory))
    load_per_scale = sum(weight * mean * memory for _, _, weight, mean, memory in drafts)
    scale = utilisation * capacity_mb / load_per_scale
    fns = tuple(
        Function(fn_id, trigger, weight * scale, mean, memory)
        for fn_id, trigger, weight, mean, memory in drafts
    )
    noise_mu = -(CALL_NOISE_SIGMA**2) / 2  # mean-one noise
    arrivals: list[Arrival] = []
    for fn in fns:
        for at in _times(rng, fn, duration):
            run = fn.mean_duration * rng.lognormvariate(noise_mu, CALL_NOISE_SIGMA)
            arrivals.append(Arrival(at, fn.fn_id, fn.memory, min(run, max_call_duration)))
    arrivals.sort(key=lambda arrival: (arrival.time, arrival.fn_id))
    return Workload(fns, tuple(arrivals))


def _times(rng: random.Random, fn: Function, duration: float) -> list[float]:
    times: list[float] = []
    if fn.trigger == "timer":
        period = 1.0 / fn.rate
        at = rng.uniform(0.0, period)
        while at < duration:
            times.append(at)
            at += period
        return times
    if fn.trigger == "poisson":
        at = rng.expovariate(fn.rate)
        while at < duration:
            times.append(at)
            at += rng.expovariate(fn.rate)
        return times
    # Bursty: bursts at rate / BURST_MEAN, each a geometric number of calls (mean BURST_MEAN)
    # with exponential gaps of mean BURST_GAP.
    at = rng.expovariate(fn.rate / BURST_MEAN)
    while at < duration:
        size = 1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - 1.0 / BURST_MEAN))
        call_at = at
        for _ in range(size):
            if call_at >= duration:
                break
            times.append(call_at)
            call_at += rng.expovariate(1.0 / BURST_GAP)
        at += rng.expovariate(fn.rate / BURST_MEAN)
    return times
