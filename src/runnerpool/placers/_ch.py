"""The consistent-hash placer: the port of Go's ``ch_placer.go``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from ._base import BasePlacer
from ._hashing import FN_SIPHASH_KEY, c_jump_hash, fn_jump_hash, siphash
from ._runtime import DEFAULT_RUNTIME, PlacerRuntime

if TYPE_CHECKING:
    from .._config import PlacerConfig
    from .._interfaces import RunnerCall

__all__ = ["CHPlacer"]

CHVariant = Literal["jump", "fn"]


class CHPlacer(BasePlacer):
    """Sends each function to the same runner first, where its hot processes are.

    The first runner of every pass is ``jump(siphash(fn_id), len(runners))``, with Fn's
    SipHash key; the others follow in list order, wrapping around.

    Args:
        config: Timeouts and back-off; Fn's defaults when omitted.
        runtime: The clock, back-off randomness and metric views; the monotonic clock,
            a shared generator and the registered views when omitted.
        variant: ``"jump"`` (the default) uses the canonical jump hash, which spreads
            functions evenly over runners. ``"fn"`` reproduces Fn's exact placement, whose
            integer jump hash never starts at runner index 1 and skews load; choose it to
            share warm runners with Fn load balancers.

    Raises:
        ValueError: For an unknown variant.
    """

    __slots__ = ("_jump", "variant")

    def __init__(
        self,
        config: PlacerConfig | None = None,
        *,
        variant: CHVariant = "jump",
        runtime: PlacerRuntime = DEFAULT_RUNTIME,
    ) -> None:
        super().__init__(config, runtime=runtime)
        self._jump: Callable[[int, int], int]
        if variant == "jump":
            self._jump = c_jump_hash  # start_index is only called with runners to choose from
        elif variant == "fn":
            self._jump = fn_jump_hash
        else:
            raise ValueError(f"unknown consistent-hash variant {variant!r}: use 'jump' or 'fn'")
        self.variant: CHVariant = variant

    def start_index(self, call: RunnerCall, runner_count: int) -> int:
        """Return the runner the function hashes to: its home."""
        key: int = siphash(FN_SIPHASH_KEY, call.model.fn_id.encode())
        start: int = self._jump(key, runner_count)
        return start

    def __repr__(self) -> str:
        return f"CHPlacer({self._config!r}, variant={self.variant!r})"
