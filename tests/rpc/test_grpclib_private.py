"""grpclib's private API behind runnerpool.rpc._grpclib_private: there, with the shape used."""

from __future__ import annotations

import tomllib
from pathlib import Path

import grpclib
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from runnerpool.rpc._channel import Keepalive, RunnerChannel
from runnerpool.rpc._grpclib_private import check
from tests.rpc.conftest import StartRunner

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_the_private_api_is_there_on_the_installed_grpclib() -> None:
    """Every private name the shim reaches is where it expects, on this grpclib."""
    assert check() == []


def test_grpclib_has_an_upper_bound_that_admits_the_installed_version() -> None:
    """pyproject.toml bounds grpclib from above, and the version tested here is within it."""
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    (requirement,) = [Requirement(d) for d in dependencies if Requirement(d).name == "grpclib"]
    assert any(spec.operator in ("<", "<=") for spec in requirement.specifier)
    assert Version(grpclib.__version__) in requirement.specifier


async def test_a_channel_connects_through_the_shim(start_runner: StartRunner) -> None:
    """The hooks work: the watched protocol is made, the runner's limit read, PING sent."""
    server = await start_runner()
    host, port = server.address.rsplit(":", 1)
    lost: list[str | None] = []
    channel = RunnerChannel(
        host, int(port), ssl=None, keepalive=Keepalive(), on_lost=lambda _, r: lost.append(r)
    )
    try:
        await channel.connect()
        assert channel.ready
        assert channel.writable
        assert channel.limit > 0  # the runner's MAX_CONCURRENT_STREAMS, read from h2
        watched = channel.current_protocol()
        assert watched is not None
        watched._ping()  # type: ignore[attr-defined]
        assert watched._ping_sent  # type: ignore[attr-defined]
        channel.kill("test")
        assert not channel.ready
        with pytest.raises(ConnectionResetError):  # before_connect refuses grpclib's reconnect
            await channel.open_connection()
    finally:
        channel.close()
