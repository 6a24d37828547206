"""A function source reading Fn's API server over REST, as Fn's LB node does.

The four reads of Fn's ``api/agent/lb_read_access`` REST client, one HTTP GET each, under
``{scheme}://{host}/v2/`` of the API server's URL (any path in it is ignored, as in Fn):

=====================  ======================================================================
app id by name         ``GET /v2/apps?name={name}``: ``items[0].id``, no item = App not found
app by id              ``GET /v2/apps/{app_id}``
trigger by source      ``GET /v2/runner/apps/{app_id}/triggerBySource/{type}/{source}``
function by id         ``GET /v2/fns/{fn_id}``
=====================  ======================================================================

A trigger's source keeps its leading ``/``, so the path has Fn's double slash
(``.../triggerBySource/http//hello``): Fn's API server strips exactly one ``/`` and matches the
rest. Ids and sources are percent-escaped where Fn's client sends them raw; the two differ
only where Fn's requests break (a ``?``, ``#`` or ``%`` in a source, a ``/`` in an id).

A 5xx answer or a network error is retried with jittered exponential back-off (stamina), at
most ``attempts`` times and ``timeout`` seconds in all; a 4xx answer is final: 404 is the
object's :class:`~runnerpool.lb._sources.NotFoundError`. Successes are cached (see
:mod:`runnerpool.lb._cache`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, TypeVar
from urllib.parse import quote, urlsplit

import httpx
import stamina
from stamina.instrumentation import RetryDetails

from .._errors import APIError
from .._resource import AsyncResource
from ._cache import LookupCache
from ._registry import App, ConfigError, Function, Trigger
from ._sources import (
    AppNotFoundError,
    FnNotFoundError,
    NotFoundError,
    SourceUnavailableError,
    TriggerNotFoundError,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable

__all__ = ["ApiSource", "ApiSourceSettings", "api_base_url", "log_retry"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: What a source may hold in a path segment besides letters and digits: Go's unescaped set.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


@dataclass(frozen=True, slots=True)
class ApiSourceSettings:
    """How the API-server source caches and retries.

    Attributes:
        cache_ttl: Seconds a fetched object is served from the cache (Fn's 5 s).
        max_stale: Seconds past its time to live that an object is still served while the
            API server is unavailable (0: never, as Fn).
        negative_ttl: Seconds a "not found" is cached (0: never, as Fn).
        timeout: Seconds one lookup may take, retries included.
        attempts: Requests per lookup at most (Fn: 6, a first one and 5 retries).
        backoff_initial: Seconds before the first retry, before jitter; doubles each retry.
        backoff_max: Longest wait between two attempts, before jitter.
        backoff_jitter: Up to this many seconds, at random, added to each wait.

    Raises:
        ValueError: If a value is out of range; the message names the field.
    """

    cache_ttl: float = 5.0
    max_stale: float = 60.0
    negative_ttl: float = 1.0
    timeout: float = 10.0
    attempts: int = 6
    backoff_initial: float = 0.025
    backoff_max: float = 1.6
    backoff_jitter: float = 0.05

    def __post_init__(self) -> None:
        for name in ("cache_ttl", "max_stale", "negative_ttl", "backoff_initial", "backoff_max"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be at least 0, got {getattr(self, name)!r}")
        if not self.backoff_jitter >= 0:
            raise ValueError(f"backoff_jitter must be at least 0, got {self.backoff_jitter!r}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be more than 0, got {self.timeout!r}")
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int):
            raise TypeError(f"attempts must be an int, got {self.attempts!r}")
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts!r}")


class _ServerError(Exception):
    """Raised for a 5xx answer of the API server: worth retrying."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status} {message}")
        self.status = status


def log_retry(details: RetryDetails) -> None:
    """Log a retry of a read of the API server (a stamina retry hook, which the CLI installs)."""
    logger.warning(
        "Fn API server error, retrying in %.2f s (retry %d): %s",
        details.wait_for,
        details.retry_num,
        _describe(details.caused_by),
    )


def _retryable(error: Exception) -> bool:
    return isinstance(error, httpx.TransportError | _ServerError)


def api_base_url(api_url: str) -> str:
    """Return ``{scheme}://{host}/v2/`` of an API server's URL, as Fn keeps only those.

    Raises:
        ValueError: If the URL is not an http or https URL with a host.
    """
    try:
        parts = urlsplit(api_url)
        scheme = parts.scheme
    except ValueError:
        scheme = ""
    if scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"the API server's URL must be http://host[:port], got {api_url!r}")
    return f"{scheme}://{parts.netloc}/v2/"


class ApiSource(AsyncResource):
    """A function source reading Fn's API server, with Fn's cache and retries.

    Args:
        api_url: The API server's URL (Fn's ``FN_RUNNER_API_URL``), e.g.
            ``http://fn-api:8080``; a path in it is ignored.
        settings: Cache and retry settings; Fn's (and runnerpool's additions) by default.
        client: The HTTP client to use (closed by :meth:`aclose`); a new one by default.
        clock: The cache's clock, seconds of a monotonic clock.

    Raises:
        ValueError: If ``api_url`` is not an http or https URL with a host.
    """

    def __init__(
        self,
        api_url: str,
        settings: ApiSourceSettings | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base_url = api_base_url(api_url)
        self.settings = settings or ApiSourceSettings()
        self._client = client or httpx.AsyncClient(timeout=self.settings.timeout)
        self._cache: LookupCache[object] = LookupCache(
            ttl=self.settings.cache_ttl,
            max_stale=self.settings.max_stale,
            negative_ttl=self.settings.negative_ttl,
            clock=clock,
        )
        # The last function built per id, reused while its fn record and app are the same.
        self._built: dict[str, tuple[object, App, Function]] = {}

    async def app_id(self, name: str) -> str:
        """Return the id of the app with this name (``GET /v2/apps?name=``)."""
        return await self._cached(("app-id", name), lambda: self._fetch_app_id(name), str)

    async def app(self, app_id: str) -> App:
        """Return the app with this id (``GET /v2/apps/{id}``)."""
        return await self._cached(("app", app_id), lambda: self._fetch_app(app_id), App)

    async def trigger(self, app_id: str, type: str, source: str) -> Trigger:
        """Return the app's trigger (``GET /v2/runner/apps/{id}/triggerBySource/...``)."""
        key = ("trigger", app_id, type, source)
        return await self._cached(key, lambda: self._fetch_trigger(app_id, type, source), Trigger)

    async def function(self, fn_id: str) -> Function:
        """Return the function with this id (``GET /v2/fns/{id}``), with its app."""
        record = await self._cached(("fn", fn_id), lambda: self._fetch_fn(fn_id), dict)
        app = await self.app(_text(record, "app_id", "fn"))
        built = self._built.get(fn_id)
        if built is not None and built[0] is record and built[1] is app:
            return built[2]
        function = _function(record, app)
        self._built[fn_id] = (record, app, function)
        return function

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()

    def __repr__(self) -> str:
        return f"<ApiSource: {self.base_url}>"

    async def _cached(
        self, key: Hashable, fetch: Callable[[], Awaitable[object]], kind: type[T]
    ) -> T:
        value = await self._cache.get(key, fetch)
        assert isinstance(value, kind)
        return value

    async def _fetch_app_id(self, name: str) -> str:
        page = await self._get("apps", AppNotFoundError, {"name": name})
        items = page.get("items")
        if not isinstance(items, list):
            _invalid("app list", "items is not a list")
        if not items:
            raise AppNotFoundError
        if not isinstance(items[0], Mapping):
            _invalid("app list", "an item is not an object")
        return _text(items[0], "id", "app")

    async def _fetch_app(self, app_id: str) -> App:
        data = await self._get(f"apps/{_segment(app_id)}", AppNotFoundError)
        try:
            return App(
                id=_text(data, "id", "app"),
                name=_text(data, "name", "app"),
                config=_mapping(data, "config", "app"),  # type: ignore[arg-type]
                annotations=_mapping(data, "annotations", "app"),
                syslog_url=_text(data, "syslog_url", "app", default=""),
            )
        except ConfigError as exc:
            _invalid("app", str(exc))

    async def _fetch_trigger(self, app_id: str, type: str, source: str) -> Trigger:
        # The source keeps its "/": Fn's double slash, which the API server expects.
        path = f"runner/apps/{_segment(app_id)}/triggerBySource/{_segment(type)}/"
        data = await self._get(path + quote(source, safe=_PATH_SAFE), TriggerNotFoundError)
        try:
            return Trigger(
                id=_text(data, "id", "trigger"),
                name=_text(data, "name", "trigger"),
                app_id=_text(data, "app_id", "trigger"),
                fn_id=_text(data, "fn_id", "trigger"),
                source=_text(data, "source", "trigger"),
                type=_text(data, "type", "trigger"),
                annotations=_mapping(data, "annotations", "trigger"),
            )
        except ConfigError as exc:
            _invalid("trigger", str(exc))

    async def _fetch_fn(self, fn_id: str) -> dict[str, object]:
        data = await self._get(f"fns/{_segment(fn_id)}", FnNotFoundError)
        return dict(data)

    async def _get(
        self,
        path: str,
        missing: type[NotFoundError],
        params: Mapping[str, str] | None = None,
    ) -> Mapping[str, object]:
        url = self.base_url + path
        settings = self.settings
        try:
            async with asyncio.timeout(settings.timeout):
                async for attempt in stamina.retry_context(
                    on=_retryable,
                    attempts=settings.attempts,
                    timeout=None,
                    wait_initial=settings.backoff_initial,
                    wait_max=settings.backoff_max,
                    wait_jitter=settings.backoff_jitter,
                ):
                    with attempt:
                        response = await self._client.get(url, params=params)
                        if response.status_code >= 500:
                            raise _ServerError(response.status_code, _message(response))
        except (TimeoutError, httpx.TransportError, _ServerError) as exc:
            logger.warning("Fn API server unavailable: GET %s: %s", url, _describe(exc))
            raise SourceUnavailableError from exc
        if response.status_code == 404:
            raise missing
        if response.status_code >= 300:
            logger.error(
                "Fn API server answered GET %s with %d: %s",
                url,
                response.status_code,
                _message(response),
            )
            raise APIError
        try:
            data = response.json()
        except ValueError:
            _invalid(path, "the answer is not JSON")
        if not isinstance(data, Mapping):
            _invalid(path, "the answer is not a JSON object")
        return data


def _function(record: Mapping[str, object], app: App) -> Function:
    try:
        memory, timeout, idle_timeout = (
            record.get(name) for name in ("memory", "timeout", "idle_timeout")
        )
        return Function(
            id=_text(record, "id", "fn"),
            name=_text(record, "name", "fn"),
            app=app,
            image=_text(record, "image", "fn"),
            memory=128 if memory is None else memory,  # type: ignore[arg-type]
            timeout=30 if timeout is None else timeout,  # type: ignore[arg-type]
            idle_timeout=30 if idle_timeout is None else idle_timeout,  # type: ignore[arg-type]
            config=_mapping(record, "config", "fn"),  # type: ignore[arg-type]
            annotations=_mapping(record, "annotations", "fn"),
        )
    except ConfigError as exc:
        _invalid("fn", str(exc))


def _text(data: Mapping[str, object], key: str, what: str, default: str | None = None) -> str:
    value = data.get(key)
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        _invalid(what, f"{key} is not a string: {value!r}")
    return value


def _mapping(data: Mapping[str, object], key: str, what: str) -> Mapping[str, object]:
    # Fn leaves out empty maps, or writes null (a function's config in lists); the models
    # check the values.
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        _invalid(what, f"{key} is not an object: {value!r}")
    return value


def _segment(text: str) -> str:
    return quote(text, safe=_PATH_SAFE.replace("/", ""))


def _invalid(what: str, problem: str) -> NoReturn:
    logger.error("Fn API server sent an invalid %s: %s", what, problem)
    raise APIError


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200]
    message = data.get("message") if isinstance(data, dict) else None
    return str(message) if message is not None else response.text[:200]


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "no answer in time"
    return str(error) or type(error).__name__
