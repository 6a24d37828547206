"""uvicorn's private API behind runnerpool._uvicorn_private: there, with the shape used."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from packaging.requirements import Requirement
from packaging.version import Version

from runnerpool._uvicorn_private import HookedServer, check

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_private_api_is_there_on_the_installed_uvicorn() -> None:
    """Every private name the shim reaches is where it expects, on this uvicorn."""
    assert check() == []


def test_uvicorn_has_an_upper_bound_that_admits_the_installed_version() -> None:
    """pyproject.toml bounds uvicorn from above, and the version tested here is within it."""
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (requirement,) = [Requirement(d) for d in dependencies if Requirement(d).name == "uvicorn"]
    assert any(spec.operator in ("<", "<=") for spec in requirement.specifier)
    assert Version(uvicorn.__version__) in requirement.specifier


async def test_serve_runs_inside_the_hook_and_connections_close() -> None:
    """A real server serves inside handle_signals(), and close_connections() ends a client's."""
    entered: list[str] = []
    started, called = asyncio.Event(), asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Never answers: the connection stays open until the server closes it.
        called.set()
        await asyncio.Event().wait()

    class Recording(HookedServer):
        @contextlib.contextmanager
        def handle_signals(self) -> Iterator[None]:
            entered.append("in")
            yield
            entered.append("out")

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            started.set()

    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="error")
    server = Recording(config)
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            await started.wait()
        assert entered == ["in"]
        port = server.servers[0].sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: lb\r\n\r\n")
        async with asyncio.timeout(10):
            await called.wait()
        assert len(server.server_state.connections) == 1
        server.close_connections()
        async with asyncio.timeout(10):
            assert await reader.read() == b""  # the server closed the connection, unanswered
        writer.close()
    finally:
        server.should_exit = server.force_exit = True
        await asyncio.wait_for(serving, 10)
    assert entered == ["in", "out"]
