"""Where the load balancer finds apps, functions and triggers: a file, or Fn's API server.

A *function source* answers the four lookups Fn's LB node makes (``api/server/lb_read_access``):
an app's id by its name, an app by id, a trigger by its app, type and source, and a function
by id. :class:`FileSource` answers them from a :class:`~runnerpool.lb._registry.Registry` (the
functions file); :class:`~runnerpool.lb._api_source.ApiSource` from Fn's API server.

Errors, each an :class:`~runnerpool.APIError` that the front end answers as it is::

    APIError
    ├── NotFoundError            404, with Fn's API messages:
    │   ├── AppNotFoundError         "App not found"
    │   ├── FnNotFoundError          "Fn not found"
    │   └── TriggerNotFoundError     "Trigger not found"
    └── SourceUnavailableError   503: the API server could not be reached, retries included
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

from .._errors import APIError
from .._resource import AsyncResource
from ._registry import Registry

if TYPE_CHECKING:
    from ._registry import App, Function, Trigger

__all__ = [
    "AppNotFoundError",
    "FileSource",
    "FnNotFoundError",
    "FunctionSource",
    "NotFoundError",
    "SourceUnavailableError",
    "TriggerNotFoundError",
    "as_source",
]


class NotFoundError(APIError):
    """Raised when a source has no such app, function or trigger (404)."""

    default_status_code: ClassVar[int] = 404
    default_message: ClassVar[str] = "Not found"


class AppNotFoundError(NotFoundError):
    """Raised when no app has the id or name looked up: Fn's ``ErrAppsNotFound``."""

    default_message: ClassVar[str] = "App not found"


class FnNotFoundError(NotFoundError):
    """Raised when no function has the id looked up: Fn's ``ErrFnsNotFound``."""

    default_message: ClassVar[str] = "Fn not found"


class TriggerNotFoundError(NotFoundError):
    """Raised when an app has no trigger of the type and source: Fn's ``ErrTriggerNotFound``."""

    default_message: ClassVar[str] = "Trigger not found"


class SourceUnavailableError(APIError):
    """Raised when the API server cannot be reached or keeps failing (503), retries included."""

    default_status_code: ClassVar[int] = 503
    default_message: ClassVar[str] = "Fn API server unavailable"


class FunctionSource(Protocol):
    """The apps, functions and triggers a load balancer serves, looked up one at a time.

    Each lookup raises its :class:`NotFoundError` when the object does not exist, and
    :class:`SourceUnavailableError` when the source cannot say.
    """

    async def app_id(self, name: str) -> str:
        """Return the id of the app with this name."""
        ...

    async def app(self, app_id: str) -> App:
        """Return the app with this id."""
        ...

    async def function(self, fn_id: str) -> Function:
        """Return the function with this id, its app included."""
        ...

    async def trigger(self, app_id: str, type: str, source: str) -> Trigger:
        """Return the app's trigger of this type (``"http"``) and source (``"/hello"``)."""
        ...

    async def aclose(self) -> None:
        """Release what the source holds (connections); lookups fail afterwards."""
        ...


class FileSource(AsyncResource):
    """A function source answering from a registry (the functions file).

    The registry is one attribute, so that swapping it for a re-read one is a single
    assignment, seen by the next lookup.

    Args:
        registry: The apps, functions and triggers.

    Attributes:
        registry: The apps, functions and triggers served now.
    """

    __slots__ = ("registry",)

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    async def app_id(self, name: str) -> str:
        """Return the id of the app with this name."""
        app = self.registry.app_by_name(name)
        if app is None:
            raise AppNotFoundError
        return app.id

    async def app(self, app_id: str) -> App:
        """Return the app with this id."""
        app = self.registry.app(app_id)
        if app is None:
            raise AppNotFoundError
        return app

    async def function(self, fn_id: str) -> Function:
        """Return the function with this id."""
        function = self.registry.function(fn_id)
        if function is None:
            raise FnNotFoundError
        return function

    async def trigger(self, app_id: str, type: str, source: str) -> Trigger:
        """Return the app's trigger of this type and source."""
        trigger = self.registry.trigger(app_id, type, source)
        if trigger is None:
            raise TriggerNotFoundError
        return trigger

    async def aclose(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"<FileSource: {self.registry!r}>"


def as_source(functions: Registry | FunctionSource) -> FunctionSource:
    """Return ``functions`` as a function source: a registry is wrapped in a :class:`FileSource`."""
    return FileSource(functions) if isinstance(functions, Registry) else functions
