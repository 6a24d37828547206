"""This load balancer's in-flight calls per runner, counted by the placers that use them.

The count is kept by the order itself, so :class:`BasePlacer`'s loop (and the placers that
do not look at load) pay nothing: :func:`tracked` counts a runner from the moment the loop
takes its index until the loop asks for the next index (the attempt was refused) or drops
the order (the call ended, committed or not: the generator is closed then, and its
``finally`` runs). A committed call thus stays counted until it ends.

This relies on CPython closing a generator as soon as its last reference goes: the loop's
iterator lives on the frame's value stack, which is unwound (and the generator closed) even when
an exception propagates and its traceback keeps the frame. On an interpreter without reference
counting the counts would be released at the next garbage collection instead.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = ["LoadTable", "tracked"]


class LoadTable:
    """In-flight attempts and calls of one placer, per runner address.

    Attributes:
        counts: In-flight count by address; addresses with none are absent.
        total: The sum of ``counts``.
    """

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.total = 0

    def get(self, address: str) -> int:
        """Return the runner's in-flight count."""
        return self.counts.get(address, 0)


def tracked(order: Iterator[int], addresses: tuple[str, ...], load: LoadTable) -> Iterator[int]:
    """Yield ``order``'s indices, counting each runner in ``load`` while its index is out.

    Args:
        order: Runner indices, each below ``len(addresses)``.
        addresses: The addresses of the runners the indices refer to.
        load: The table to count in.
    """
    counts = load.counts
    for index in order:
        address = addresses[index]
        counts[address] = counts.get(address, 0) + 1
        load.total += 1
        try:
            yield index
        finally:
            load.total -= 1
            left = counts[address] - 1
            if left:
                counts[address] = left
            else:
                del counts[address]
