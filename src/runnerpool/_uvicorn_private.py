"""The private parts of uvicorn's server the load balancer relies on, in one place.

:class:`~runnerpool.lb._serve.LBServer` drains on SIGINT and SIGTERM instead of stopping, so it
replaces ``Server.capture_signals()`` (the context manager uvicorn's ``serve()`` runs inside,
which otherwise handles the signals and re-raises them at the end), and on a second signal it
closes the connections uvicorn keeps in ``Server.server_state.connections``. uvicorn documents
neither. :class:`~runnerpool.lb._protocol.EdgeProtocol` also takes uvicorn's ``ServerState``
(and relies on ``HttpToolsProtocol`` internals, pinned by ``tests/lb/test_edge.py``).

``pyproject.toml`` bounds uvicorn below the next minor version, and
``tests/lb/test_uvicorn_private.py`` checks :func:`check` on the installed version.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Iterator

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

__all__ = ["HookedServer", "ServerState", "check"]


class HookedServer(uvicorn.Server):
    """uvicorn's server, with the signals its ``serve()`` handles and its connections as hooks."""

    def handle_signals(self) -> contextlib.AbstractContextManager[None]:
        """Return the context in which the server serves, handling signals as it wants.

        uvicorn's own handling (stop on the first signal, re-raise it at the end) by default.
        """
        return super().capture_signals()

    def close_connections(self) -> None:
        """Close the transport of every open connection now, without waiting for responses."""
        for connection in list(self.server_state.connections):
            transport: asyncio.BaseTransport | None = getattr(connection, "transport", None)
            if transport is not None:
                transport.close()

    # uvicorn's name, which its serve() calls: kept to this method.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with self.handle_signals():
            yield


def check() -> list[str]:
    """Return what of the private API above the installed uvicorn lacks (empty: all there)."""
    problems = []
    if "with self.capture_signals():" not in inspect.getsource(uvicorn.Server.serve):
        problems.append("uvicorn.Server.serve() no longer runs inside capture_signals()")
    if list(inspect.signature(uvicorn.Server.capture_signals).parameters) != ["self"]:
        problems.append("uvicorn.Server.capture_signals(self) changed")
    if "self.server_state = ServerState()" not in inspect.getsource(uvicorn.Server.__init__):
        problems.append("uvicorn.Server no longer keeps a ServerState in server_state")
    state = ServerState()
    for name in ("connections", "default_headers"):
        if not hasattr(state, name):
            problems.append(f"uvicorn's ServerState has no {name!r}")
    expected = ["self", "config", "server_state", "app_state", "_loop"]
    if list(inspect.signature(HttpToolsProtocol.__init__).parameters) != expected:
        problems.append("HttpToolsProtocol(config, server_state, app_state, _loop) changed")
    return problems
