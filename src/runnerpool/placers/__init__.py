"""Placers: strategies for the order in which a call tries runners."""

from __future__ import annotations

from ._base import BasePlacer as BasePlacer
from ._bounded import BoundedLoadPlacer as BoundedLoadPlacer
from ._ch import CHPlacer as CHPlacer
from ._least_loaded import LeastLoadedPlacer as LeastLoadedPlacer
from ._naive import NaivePlacer as NaivePlacer
from ._registry import DEFAULT_PLACER as DEFAULT_PLACER
from ._registry import PlacerFactory as PlacerFactory
from ._registry import create_placer as create_placer
from ._registry import placer_help as placer_help
from ._registry import placer_names as placer_names
from ._registry import register_placer as register_placer
from ._rendezvous import RendezvousPlacer as RendezvousPlacer
from ._runtime import DEFAULT_RUNTIME as DEFAULT_RUNTIME
from ._runtime import PlacerRuntime as PlacerRuntime
from ._tracker import PlacerTracker as PlacerTracker
from ._warm import WarmBoundedPlacer as WarmBoundedPlacer

__all__ = [
    "DEFAULT_PLACER",
    "DEFAULT_RUNTIME",
    "BasePlacer",
    "BoundedLoadPlacer",
    "CHPlacer",
    "LeastLoadedPlacer",
    "NaivePlacer",
    "PlacerFactory",
    "PlacerRuntime",
    "PlacerTracker",
    "RendezvousPlacer",
    "WarmBoundedPlacer",
    "create_placer",
    "placer_help",
    "placer_names",
    "register_placer",
]
