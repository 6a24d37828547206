"""Placers: strategies for the order in which a call tries runners."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._base import BasePlacer as BasePlacer
from ._ch import CHPlacer as CHPlacer
from ._fake import FakeDetachedPlacer as FakeDetachedPlacer
from ._naive import NaivePlacer as NaivePlacer

if TYPE_CHECKING:
    from .._config import PlacerConfig

__all__ = ["BasePlacer", "CHPlacer", "FakeDetachedPlacer", "NaivePlacer", "create_placer"]


def create_placer(name: str, config: PlacerConfig | None = None) -> BasePlacer:
    """Create a placer by the name users give it in configuration (``FN_PLACER``).

    Args:
        name: ``"ch"`` (consistent hashing, canonical jump hash), ``"ch-fn"`` (consistent
            hashing with Fn's exact placement) or ``"naive"`` (round robin).
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
    raise ValueError(f"unknown placer {name!r}: use 'ch', 'ch-fn' or 'naive'")
