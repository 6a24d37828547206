"""The FDK executor closes under async with, and closing it twice is harmless."""

from __future__ import annotations

from collections.abc import Callable

from runnerpool.fdk import FdkExecutor


async def test_async_with_removes_its_socket_directories(
    make_executor: Callable[..., FdkExecutor],
) -> None:
    """Leaving async with removes the executor's own iofs root; a second aclose() does nothing."""
    async with make_executor() as executor:
        root = executor.iofs_root
        assert root.is_dir()
    assert not root.exists()
    await executor.aclose()
    assert not root.exists()
