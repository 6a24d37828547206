"""The placer registry: each name users give a placer, with its factory and description.

The names are what ``FN_PLACER`` and ``--placer`` take.
:func:`create_placer`, the command line's ``--placer`` choices and help, and the simulator all
read this one table, so a placer is added in one place; :func:`register_placer` adds a user's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ._bounded import BoundedLoadPlacer
from ._ch import CHPlacer
from ._least_loaded import LeastLoadedPlacer
from ._naive import NaivePlacer
from ._rendezvous import RendezvousPlacer
from ._runtime import DEFAULT_RUNTIME, PlacerRuntime
from ._warm import WarmBoundedPlacer

if TYPE_CHECKING:
    from .._config import PlacerConfig
    from ._base import BasePlacer

__all__ = [
    "DEFAULT_PLACER",
    "PlacerFactory",
    "create_placer",
    "placer_help",
    "placer_names",
    "register_placer",
]


class PlacerFactory(Protocol):
    """Makes a placer from a configuration (``None``: Fn's defaults) and a runtime.

    The placer classes are factories: ``register_placer("mine", NaivePlacer, ...)``.
    """

    def __call__(
        self, config: PlacerConfig | None, /, *, runtime: PlacerRuntime = ...
    ) -> BasePlacer:
        """Return a new placer."""
        ...


#: The placer a load balancer uses unless told otherwise.
DEFAULT_PLACER = "ch"


@dataclass(frozen=True, slots=True)
class _Entry:
    factory: PlacerFactory
    description: str


_PLACERS: dict[str, _Entry] = {}


def register_placer(
    name: str, factory: PlacerFactory, *, description: str, replace: bool = False
) -> None:
    """Make a placer available by name to :func:`create_placer`, ``serve_lb`` and the CLI.

    Args:
        name: The name users give in configuration (``FN_PLACER``, ``--placer``): lower-case
            letters, digits and ``-``.
        factory: Makes the placer from a :class:`~runnerpool.PlacerConfig` (or ``None``).
        description: One line for the command line's help, e.g. ``"round robin"``.
        replace: Allow replacing a name already registered.

    Raises:
        ValueError: If the name is malformed, or taken and ``replace`` is false.
    """
    if not name or not all(c.islower() or c.isdigit() or c == "-" for c in name):
        raise ValueError(f"placer name {name!r} must be lower-case letters, digits and '-'")
    if name in _PLACERS and not replace:
        raise ValueError(f"placer {name!r} is already registered")
    _PLACERS[name] = _Entry(factory, description)


def placer_names() -> tuple[str, ...]:
    """Return the registered placer names, in registration order (the built-in ones first)."""
    return tuple(_PLACERS)


def placer_help() -> str:
    """Return ``name = description`` for every registered placer, separated by ``; ``."""
    return "; ".join(f"{name} = {entry.description}" for name, entry in _PLACERS.items())


def create_placer(
    name: str, config: PlacerConfig | None = None, *, runtime: PlacerRuntime = DEFAULT_RUNTIME
) -> BasePlacer:
    """Create a placer by the name users give it in configuration (``FN_PLACER``).

    The built-in names are ``"ch"`` (consistent hashing, canonical jump hash), ``"ch-fn"``
    (consistent hashing with Fn's exact placement), ``"naive"`` (round robin), ``"bounded"``
    (consistent hashing with bounded loads, ``c`` from the configuration's
    ``bounded_load_factor``), ``"rendezvous"`` (rendezvous hashing), ``"least-loaded"``
    (the less loaded of a function's two preferred runners first) and ``"warm-bounded"``
    (bounded loads, runners with an idle instance of the function first);
    :func:`register_placer` adds more.

    Args:
        name: A name of :func:`placer_names`.
        config: Timeouts and back-off; Fn's defaults when omitted.
        runtime: The placer's clock, back-off randomness and metric views (keyword only).

    Returns:
        The placer.

    Raises:
        ValueError: For an unknown name. (Fn silently falls back to round robin; a typo in
            production configuration deserves an error.)
    """
    entry = _PLACERS.get(name)
    if entry is None:
        known = ", ".join(repr(known) for known in _PLACERS)
        raise ValueError(f"unknown placer {name!r}: use one of {known}")
    return entry.factory(config, runtime=runtime)


def _ch_fn(
    config: PlacerConfig | None, /, *, runtime: PlacerRuntime = DEFAULT_RUNTIME
) -> BasePlacer:
    return CHPlacer(config, variant="fn", runtime=runtime)


register_placer(
    "ch",
    CHPlacer,
    description="consistent hashing (a function's calls go to the same runner first, where "
    "it is warm)",
)
register_placer(
    "ch-fn",
    _ch_fn,
    description="the same with Fn's exact placement",
)
register_placer("naive", NaivePlacer, description="round robin")
register_placer("bounded", BoundedLoadPlacer, description="consistent hashing with bounded loads")
register_placer(
    "rendezvous",
    RendezvousPlacer,
    description="rendezvous hashing, stable when any runner leaves",
)
register_placer(
    "least-loaded",
    LeastLoadedPlacer,
    description="the less loaded of two preferred runners",
)
register_placer(
    "warm-bounded",
    WarmBoundedPlacer,
    description="bounded loads, runners with an idle instance of the function first",
)
