"""One way to close: ``aclose()`` and ``async with``, as anyio's ``AsyncResource`` does.

Go closes with ``Close()`` or ``Shutdown(ctx)``; here everything that holds sockets, tasks or
processes closes with ``await x.aclose()``, or at the end of ``async with x:``. Closing twice
is harmless. The names used before (``Runner.close()``, ``RunnerPool.shutdown()``) still work
for one release and warn (:class:`DeprecationWarning`).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["AsyncResource", "aclose_resource", "warn_renamed"]


class AsyncResource:
    """A base that gives a class with ``aclose()`` the ``async with`` form.

    Subclasses implement :meth:`aclose`; ``async with resource:`` returns the resource and
    closes it on the way out, whether the block raised or not. Subclasses that must start
    something on entry (a server that listens) override ``__aenter__``.
    """

    async def aclose(self) -> None:
        """Release what the resource holds; closing again does nothing."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def warn_renamed(owner: object, old: str, new: str = "aclose()") -> None:
    """Warn, from a deprecated alias, that ``old`` is now called ``new``.

    Args:
        owner: The object whose member was used.
        old: The deprecated member, as written (``"close()"``).
        new: Its new name.
    """
    warnings.warn(
        f"{type(owner).__name__}.{old} is deprecated; use {new} instead",
        DeprecationWarning,
        stacklevel=3,
    )


async def aclose_resource(resource: object, old: str) -> None:
    """Close a resource that may still only have its pre-``aclose()`` name.

    A user's runner or pool written against the previous release has ``close()`` or
    ``shutdown()`` and no ``aclose()``; it keeps working for one release, with a warning.

    Args:
        resource: The runner, pool or other resource to close.
        old: The name it had before ``aclose()`` (``"close"`` or ``"shutdown"``).
    """
    aclose = getattr(resource, "aclose", None)
    if aclose is not None:
        await aclose()
        return
    warnings.warn(
        f"{type(resource).__name__} has {old}() but no aclose(); "
        f"rename it aclose() (the old name is deprecated)",
        DeprecationWarning,
        stacklevel=2,
    )
    await getattr(resource, old)()
