"""The API-server source against the test Fn API node: Fn's four reads, cache and retries."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from runnerpool._errors import APIError
from runnerpool.lb._api_source import ApiSource, ApiSourceSettings, api_base_url
from runnerpool.lb._sources import (
    AppNotFoundError,
    FnNotFoundError,
    SourceUnavailableError,
    TriggerNotFoundError,
)
from tests.lb.conftest import closed_port
from tests.lb.fn_api import APP, BARE_APP, FN, INVOKE_ENDPOINT, TRIGGER, FnApi

#: Quick retries, so that failing lookups end fast.
QUICK = ApiSourceSettings(backoff_initial=0.001, backoff_max=0.01, backoff_jitter=0.001)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def api_server() -> Iterator[FnApi]:
    """A test Fn API node for the module."""
    server = FnApi()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def api(api_server: FnApi) -> FnApi:
    """The module's test Fn API node, serving the recorded objects only, with no request yet."""
    api_server.reset()
    return api_server


@pytest.fixture
def clock() -> Clock:
    """The source's cache clock."""
    return Clock()


@pytest.fixture
async def source(api: FnApi, clock: Clock) -> AsyncIterator[ApiSource]:
    """An API-server source reading ``api``, on the test's clock."""
    reading = ApiSource(api.url + "/ignored/path", QUICK, clock=clock)
    yield reading
    await reading.aclose()


class TestReads:
    async def test_trigger_path_has_fn_double_slash(self, api: FnApi, source: ApiSource) -> None:
        """A trigger is read at .../triggerBySource/http//hello, as Fn's LB reads it."""
        trigger = await source.trigger(APP["id"], "http", "/hello")
        assert api.requests == [f"/v2/runner/apps/{APP['id']}/triggerBySource/http//hello"]
        assert (trigger.id, trigger.name, trigger.app_id, trigger.fn_id, trigger.source) == (
            TRIGGER["id"],
            "hello-trig",
            APP["id"],
            FN["id"],
            "/hello",
        )
        assert dict(trigger.annotations) == {"example.com/trig": "t"}

    async def test_root_source(self, api: FnApi, source: ApiSource) -> None:
        """Source ``/`` is read at .../http//."""
        api.add_trigger({**TRIGGER, "id": "T2", "name": "root", "source": "/"})
        trigger = await source.trigger(APP["id"], "http", "/")
        assert trigger.id == "T2"
        assert api.requests[-1].endswith("/triggerBySource/http//")

    async def test_single_slash_is_not_found_on_fn(self, api: FnApi) -> None:
        """The test server is Fn's: a single slash does not find ``/hello`` (so it checks ours)."""
        source = ApiSource(api.url, QUICK)
        try:
            with pytest.raises(TriggerNotFoundError):
                await source.trigger(APP["id"], "http", "hello")
        finally:
            await source.aclose()
        assert api.requests == [f"/v2/runner/apps/{APP['id']}/triggerBySource/http/hello"]

    async def test_escapes_what_fn_would_break_on(self, api: FnApi, source: ApiSource) -> None:
        """A source with ``?``, ``#`` or ``%`` is escaped, so the API server gets it whole."""
        api.add_trigger({**TRIGGER, "id": "T3", "name": "odd", "source": "/a?b#c%d"})
        trigger = await source.trigger(APP["id"], "http", "/a?b#c%d")
        assert trigger.id == "T3"
        assert api.requests[-1].endswith("/triggerBySource/http//a%3Fb%23c%25d")

    async def test_app_id_by_name(self, api: FnApi, source: ApiSource) -> None:
        """An app's id comes from ``GET /v2/apps?name=``."""
        assert await source.app_id("myapp") == APP["id"]
        assert api.requests == ["/v2/apps?name=myapp"]

    async def test_app_name_is_exact(self, source: ApiSource) -> None:
        """No app of that exact name (an empty list) is App not found."""
        with pytest.raises(AppNotFoundError) as caught:
            await source.app_id("my")
        assert (caught.value.status_code, caught.value.message) == (404, "App not found")

    async def test_app(self, api: FnApi, source: ApiSource) -> None:
        """An app is read at /v2/apps/{id}, with its config, annotations and syslog URL."""
        app = await source.app(APP["id"])
        assert api.requests == [f"/v2/apps/{APP['id']}"]
        assert (app.id, app.name, app.syslog_url) == (APP["id"], "myapp", APP["syslog_url"])
        assert dict(app.config) == APP["config"]
        assert dict(app.annotations) == APP["annotations"]

    async def test_bare_app(self, source: ApiSource) -> None:
        """An app with only a name (no config, annotations or syslog URL keys) is read."""
        app = await source.app(BARE_APP["id"])
        assert (dict(app.config), dict(app.annotations), app.syslog_url) == ({}, {}, "")

    async def test_function_with_injected_annotation(self, api: FnApi, source: ApiSource) -> None:
        """A function comes from /v2/fns/{id}, its app after, and keeps the injected annotation."""
        function = await source.function(FN["id"])
        assert api.requests == [f"/v2/fns/{FN['id']}", f"/v2/apps/{APP['id']}"]
        assert (function.id, function.name, function.image) == (FN["id"], "httpinfo", FN["image"])
        assert (function.memory, function.timeout, function.idle_timeout) == (256, 20, 40)
        assert dict(function.config) == FN["config"]
        assert function.annotations[INVOKE_ENDPOINT] == f"{api.url}/invoke/{FN['id']}"
        assert function.app.name == "myapp"

    async def test_function_defaults_and_null_config(self, api: FnApi, source: ApiSource) -> None:
        """Missing limits take Fn's defaults; a null config (Fn's list quirk) is empty."""
        api.add_fn({"id": "F2", "name": "bare", "app_id": APP["id"], "image": "x", "config": None})
        function = await source.function("F2")
        assert (function.memory, function.timeout, function.idle_timeout) == (128, 30, 30)
        assert dict(function.config) == {}

    async def test_function_object_reused_while_unchanged(self, source: ApiSource) -> None:
        """The same cached fn and app give the very same Function object."""
        assert await source.function(FN["id"]) is await source.function(FN["id"])

    @pytest.mark.parametrize(
        ("lookup", "error", "message"),
        [
            ("app", AppNotFoundError, "App not found"),
            ("function", FnNotFoundError, "Fn not found"),
            ("trigger", TriggerNotFoundError, "Trigger not found"),
        ],
    )
    async def test_not_found(
        self, api: FnApi, source: ApiSource, lookup: str, error: type[APIError], message: str
    ) -> None:
        """A 404 of the API server is the object's not-found, with Fn's message, not retried."""
        reads: dict[str, Callable[[], Awaitable[object]]] = {
            "app": lambda: source.app("NOSUCH"),
            "function": lambda: source.function("NOSUCH"),
            "trigger": lambda: source.trigger(APP["id"], "http", "/nosuch"),
        }
        with pytest.raises(error) as caught:
            await reads[lookup]()
        assert (caught.value.status_code, caught.value.message) == (404, message)
        assert len(api.requests) == 1

    async def test_function_of_missing_app(self, api: FnApi, source: ApiSource) -> None:
        """A function whose app is gone is App not found."""
        api.add_fn({**FN, "id": "F3", "app_id": "GONE"})
        with pytest.raises(AppNotFoundError):
            await source.function("F3")

    @pytest.mark.parametrize(
        ("fn", "problem"),
        [
            ({"id": "F4", "app_id": APP["id"], "image": "x"}, "name"),
            ({"id": "F4", "name": "n", "app_id": APP["id"], "image": "x", "memory": "big"}, "1"),
            ({"id": "F4", "name": "n", "app_id": APP["id"], "image": "x", "config": [1]}, "config"),
        ],
    )
    async def test_invalid_object_is_500(
        self,
        api: FnApi,
        source: ApiSource,
        fn: dict[str, object],
        problem: str,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """An object the models refuse is a logged 500, not a crash."""
        api.add_fn(fn)
        with pytest.raises(APIError) as caught:
            await source.function("F4")
        assert caught.value.status_code == 500
        assert "invalid fn" in caplog.text
        assert problem in caplog.text

    def test_base_url(self) -> None:
        """Only the scheme and host of the API URL are kept, then /v2/; others are refused."""
        assert api_base_url("http://fn:8080/some/path?x") == "http://fn:8080/v2/"
        assert api_base_url("https://fn") == "https://fn/v2/"
        for bad in ("fn:8080", "ftp://fn", "http://", ""):
            with pytest.raises(ValueError, match="http://host"):
                api_base_url(bad)

    @pytest.mark.parametrize(
        "settings",
        [
            {"cache_ttl": -1},
            {"max_stale": -1},
            {"timeout": 0},
            {"attempts": 0},
            {"backoff_jitter": -1},
        ],
    )
    def test_settings_validated(self, settings: dict[str, float]) -> None:
        """A setting out of range is a ValueError naming it."""
        with pytest.raises(ValueError, match=next(iter(settings))):
            ApiSourceSettings(**settings)  # type: ignore[arg-type]


class TestCache:
    async def test_ttl(self, api: FnApi, source: ApiSource, clock: Clock) -> None:
        """Lookups are cached 5 s from their fetch, then read again, seeing the change."""
        await source.function(FN["id"])
        api.add_fn({**FN, "image": "httpinfo:0.0.2", "memory": 300})
        clock.now += 4.9
        assert (await source.function(FN["id"])).image == "httpinfo:0.0.1"
        assert len(api.requests) == 2
        clock.now += 0.1
        function = await source.function(FN["id"])
        assert (function.image, function.memory) == ("httpinfo:0.0.2", 300)
        assert len(api.requests) == 4

    async def test_concurrent_misses_share_one_request(self, api: FnApi, source: ApiSource) -> None:
        """Twenty concurrent lookups of a cold trigger path make one request per read."""
        api.delay = 0.2

        async def trigger_path() -> str:
            app_id = await source.app_id("myapp")
            await source.app(app_id)
            trigger = await source.trigger(app_id, "http", "/hello")
            return (await source.function(trigger.fn_id)).id

        assert await asyncio.gather(*(trigger_path() for _ in range(20))) == [FN["id"]] * 20
        assert sorted(api.requests) == sorted(
            [
                "/v2/apps?name=myapp",
                f"/v2/apps/{APP['id']}",
                f"/v2/runner/apps/{APP['id']}/triggerBySource/http//hello",
                f"/v2/fns/{FN['id']}",
            ]
        )

    async def test_stale_while_server_down(
        self, api: FnApi, source: ApiSource, clock: Clock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With the API server gone, an expired function is served (warned) within the window."""
        await source.function(FN["id"])
        api.stop()
        clock.now += 30
        with caplog.at_level(logging.WARNING):
            function = await source.function(FN["id"])
        assert function.id == FN["id"]
        assert "Serving" in caplog.text
        assert "Fn API server unavailable" in caplog.text
        clock.now += 40  # 70 s from the fetch: past 5 s + 60 s
        with pytest.raises(SourceUnavailableError) as caught:
            await source.function(FN["id"])
        assert caught.value.status_code == 503

    async def test_negative_cache(self, api: FnApi, source: ApiSource, clock: Clock) -> None:
        """An unknown id is asked once a second, not on every lookup."""
        for _ in range(10):
            with pytest.raises(FnNotFoundError):
                await source.function("UNKNOWN")
        assert api.count("/v2/fns/UNKNOWN") == 1
        api.add_fn({**FN, "id": "UNKNOWN"})
        clock.now += 1
        assert (await source.function("UNKNOWN")).id == "UNKNOWN"


class TestRetries:
    async def test_5xx_retried(self, api: FnApi, source: ApiSource) -> None:
        """A 5xx answer is retried until the API server answers."""
        api.fail_with, api.failures = 502, 3
        assert (await source.app(APP["id"])).name == "myapp"
        assert len(api.requests) == 4

    async def test_5xx_gives_up_after_attempts(self, api: FnApi, source: ApiSource) -> None:
        """A 5xx on every attempt is 503 after six requests (Fn's five retries)."""
        api.fail_with = 500
        with pytest.raises(SourceUnavailableError):
            await source.app(APP["id"])
        assert len(api.requests) == 6

    @pytest.mark.parametrize("status", [400, 401, 403, 405, 409])
    async def test_4xx_not_retried(self, api: FnApi, source: ApiSource, status: int) -> None:
        """A 4xx other than 404 is final: one request, a 500 for the client."""
        api.fail_with = status
        with pytest.raises(APIError) as caught:
            await source.app(APP["id"])
        assert caught.value.status_code == 500
        assert len(api.requests) == 1

    async def test_connection_refused_bounded(self, caplog: pytest.LogCaptureFixture) -> None:
        """Nothing listening: every attempt is made, then 503, within the timeout."""
        settings = ApiSourceSettings(timeout=5, backoff_initial=0.01, backoff_max=0.05)
        source = ApiSource(f"http://127.0.0.1:{closed_port()}", settings)
        start = time.monotonic()
        try:
            with caplog.at_level(logging.WARNING), pytest.raises(SourceUnavailableError):
                await source.function("F")
        finally:
            await source.aclose()
        assert time.monotonic() - start < 5 + 2
        assert "Fn API server unavailable" in caplog.text

    async def test_hanging_server_bounded_by_timeout(self, api: FnApi) -> None:
        """An API server that does not answer costs the lookup timeout, then 503."""
        api.delay = 3
        source = ApiSource(api.url, ApiSourceSettings(timeout=0.5))
        start = time.monotonic()
        try:
            with pytest.raises(SourceUnavailableError):
                await source.app(APP["id"])
        finally:
            await source.aclose()
        elapsed = time.monotonic() - start
        assert 0.5 <= elapsed < 5
