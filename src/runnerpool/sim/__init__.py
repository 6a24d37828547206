"""A deterministic simulator of placers on a synthetic workload, in virtual time.

The real placers place calls on simulated runners (memory capacity, hot instances that
expire when idle) on an asyncio event loop whose clock jumps from timer to timer.
"""

from __future__ import annotations

from ._clock import VirtualEventLoop, run_virtual, virtual_runtime
from ._runner import SimCall, SimPool, SimRunner
from ._simulate import (
    PlacerReport,
    SimulationSettings,
    format_table,
    homes_moved,
    percentile,
    run_placer,
    simulate,
    write_plots,
)
from ._workload import Arrival, Function, Workload, burr, generate_workload

__all__ = [
    "Arrival",
    "Function",
    "PlacerReport",
    "SimCall",
    "SimPool",
    "SimRunner",
    "SimulationSettings",
    "VirtualEventLoop",
    "Workload",
    "burr",
    "format_table",
    "generate_workload",
    "homes_moved",
    "percentile",
    "run_placer",
    "run_virtual",
    "simulate",
    "virtual_runtime",
    "write_plots",
]
