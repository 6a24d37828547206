"""The load balancer's and runner's settings: validated once, and obeyed where they are used."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator

import httpx
import pytest

from runnerpool import NaivePlacer, PlacerConfig
from runnerpool.lb import LBSettings, Registry, create_app
from runnerpool.lb._agent import LBAgent
from runnerpool.placers import DEFAULT_PLACER
from runnerpool.runner import RunnerSettings
from runnerpool.testing import FakeRunner, FakeRunnerPool, succeed

FUNCTIONS = """\
[[apps]]
name = "app"

[[functions]]
id = "fn1"
name = "echo"
app = "app"
image = "echo"
"""


class TestLBSettings:
    def test_defaults_are_safe(self) -> None:
        """Loopback, the default placer, a 6 MiB body limit, Fn's placer configuration."""
        settings = LBSettings()
        assert (settings.host, settings.port, settings.placer) == (
            "127.0.0.1",
            8080,
            DEFAULT_PLACER,
        )
        assert settings.max_request_size == 6 * 1024 * 1024
        assert settings.placer_config == PlacerConfig()
        assert settings.access_log

    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"port": 65536}, "LBSettings.port must be an integer from 0 to 65535"),
            ({"port": True}, "LBSettings.port"),
            ({"placer": "rr"}, "LBSettings.placer 'rr' is unknown: use one of ch,"),
            ({"max_request_size": -1}, "LBSettings.max_request_size must be >= 0"),
            ({"max_response_size": -5}, "LBSettings.max_response_size must be >= 0"),
            ({"drain_timeout": -1.0}, "LBSettings.drain_timeout must be >= 0"),
            ({"runner_connections": 0}, "LBSettings.runner_connections must be >= 1"),
        ],
    )
    def test_bad_values_name_the_field(self, fields: dict[str, object], message: str) -> None:
        """Each invalid value is refused with a ValueError naming the settings field."""
        with pytest.raises(ValueError, match=message):
            LBSettings(**fields)  # type: ignore[arg-type]

    def test_frozen(self) -> None:
        """Settings are built once: a variant is a replace(), never an assignment."""
        settings = LBSettings()
        with pytest.raises(dataclasses.FrozenInstanceError):
            settings.port = 1  # type: ignore[misc]
        assert dataclasses.replace(settings, port=0).port == 0


class TestRunnerSettings:
    @pytest.mark.parametrize(
        ("fields", "message"),
        [
            ({"port": -1}, "RunnerSettings.port"),
            ({"max_request_size": -1}, "RunnerSettings.max_request_size"),
            ({"drain_timeout": -0.5}, "RunnerSettings.drain_timeout"),
        ],
    )
    def test_bad_values_name_the_field(self, fields: dict[str, object], message: str) -> None:
        """Each invalid value is refused with a ValueError naming the settings field."""
        with pytest.raises(ValueError, match=message):
            RunnerSettings(**fields)  # type: ignore[arg-type]

    def test_defaults(self) -> None:
        """Loopback on Fn's gRPC port, no size limit, wait for calls when draining."""
        assert RunnerSettings() == RunnerSettings(host="127.0.0.1", port=9190)
        assert RunnerSettings().drain_timeout is None


@contextlib.asynccontextmanager
async def lb_client(settings: LBSettings | None, body: bytes) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process load balancer app with one fake runner answering ``body``."""
    runner = FakeRunner("r1", then=succeed(body))
    agent = LBAgent(NaivePlacer(PlacerConfig(placer_timeout=1)), FakeRunnerPool([runner]))
    app = create_app(agent, Registry.from_toml(FUNCTIONS), settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://lb") as client:
        yield client
    await agent.aclose()


class TestCreateApp:
    async def test_request_limit_comes_from_the_settings(self) -> None:
        """A body over the settings' max_request_size gets 413; one at the limit is placed."""
        async with lb_client(LBSettings(max_request_size=4), b"done") as client:
            assert (await client.post("/invoke/fn1", content=b"12345")).status_code == 413
            response = await client.post("/invoke/fn1", content=b"1234")
            assert (response.status_code, response.content) == (200, b"done")

    async def test_response_limit_comes_from_the_settings(self) -> None:
        """A function response over the settings' max_response_size gets 502."""
        async with lb_client(LBSettings(max_response_size=3), b"too long") as client:
            assert (await client.post("/invoke/fn1", content=b"x")).status_code == 502

    async def test_without_settings_the_safe_limit_applies(self) -> None:
        """create_app without settings refuses bodies over LBSettings' 6 MiB, as serve_lb."""
        async with lb_client(None, b"ok") as client:
            limit = LBSettings().max_request_size
            assert limit is not None
            response = await client.post("/invoke/fn1", content=b"x" * (limit + 1))
            assert response.status_code == 413
