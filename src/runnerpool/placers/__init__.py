"""Placers: strategies for the order in which a call tries runners."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._base import BasePlacer as BasePlacer
from ._bounded import BoundedLoadPlacer as BoundedLoadPlacer
from ._ch import CHPlacer as CHPlacer
from ._fake import FakeDetachedPlacer as FakeDetachedPlacer
from ._least_loaded import LeastLoadedPlacer as LeastLoadedPlacer
from ._naive import NaivePlacer as NaivePlacer
from ._rendezvous import RendezvousPlacer as RendezvousPlacer
from ._warm import WarmBoundedPlacer as WarmBoundedPlacer

if TYPE_CHECKING:
    from .._config import PlacerConfig

__all__ = [
    "BasePlacer",
    "BoundedLoadPlacer",
    "CHPlacer",
    "FakeDetachedPlacer",
    "LeastLoadedPlacer",
    "NaivePlacer",
    "RendezvousPlacer",
    "WarmBoundedPlacer",
    "create_placer",
]

#: The names :func:`create_placer` knows, for configuration and the command line.
PLACER_NAMES = ("ch", "ch-fn", "naive", "bounded", "rendezvous", "least-loaded", "warm-bounded")


def create_placer(name: str, config: PlacerConfig | None = None) -> BasePlacer:
    """Create a placer by the name users give it in configuration (``FN_PLACER``).

    Args:
        name: ``"ch"`` (consistent hashing, canonical jump hash), ``"ch-fn"`` (consistent
            hashing with Fn's exact placement), ``"naive"`` (round robin), ``"bounded"``
            (consistent hashing with bounded loads, ``c`` from the configuration's
            ``bounded_load_factor``), ``"rendezvous"``
            (rendezvous hashing), ``"least-loaded"`` (the less loaded of a function's two
            preferred runners first) or ``"warm-bounded"`` (bounded load that sends a call
            where its function has an idle instance first).
        config: Timeouts and back-off; Fn's defaults when omitted.

    Returns:
        The placer.

    Raises:
        ValueError: For an unknown name. (Fn silently falls back to round robin; a typo in
            production configuration deserves an error.)
    """
    if name == "ch":
        return CHPlacer(config)
    if name == "ch-fn":
        return CHPlacer(config, variant="fn")
    if name == "naive":
        return NaivePlacer(config)
    if name == "bounded":
        return BoundedLoadPlacer(config)
    if name == "rendezvous":
        return RendezvousPlacer(config)
    if name == "least-loaded":
        return LeastLoadedPlacer(config)
    if name == "warm-bounded":
        return WarmBoundedPlacer(config)
    known = ", ".join(repr(known) for known in PLACER_NAMES)
    raise ValueError(f"unknown placer {name!r}: use one of {known}")
