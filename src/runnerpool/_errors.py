"""The exception tree of runnerpool.

::

    RunnerPoolError
    ├── APIError                      an error with an HTTP status code (Go's models.APIError)
    │   ├── FuncError                 ...that is the user's fault (Go's models.FuncError)
    │   │   ├── FunctionFailedError   502 "function failed"
    │   │   ├── CallTimeoutError      504 "Timed out"
    │   │   ├── ResponseTooLargeError 502 "function response body too large"
    │   │   └── RequestTooLargeError  413 "Request content too large"
    │   └── ServerBusyError           503 "Timed out - server too busy": placement gave up
    │       └── NoRunnerReachableError    503 "No runner is reachable": every runner was down
    ├── PartialRunnersError           a pool gives some runners, and an error if they all fail
    ├── RunnerConnectionError         the connection to a runner failed after it took the call
    ├── RunnerProtocolError           a runner broke the protocol after it took the call
    └── NotPlacedError                a runner did not take the call; another may be tried
        ├── RunnerBusyError           the runner's 503 too-busy NACK
        ├── RunnerClosedError         the runner was closed before the attempt
        └── RunnerUnavailableError    the runner could not be reached

Go returns ``ErrCallTimeoutServerBusy`` both for a runner's NACK and for a placer that gave up.
Here the NACK stays internal as :class:`RunnerBusyError`, so that metrics and callers can tell
"this runner refused" from "every runner refused until the placer timed out".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from ._interfaces import Runner

__all__ = [
    "APIError",
    "CallTimeoutError",
    "FuncError",
    "FunctionFailedError",
    "NoRunnerReachableError",
    "NotPlacedError",
    "PartialRunnersError",
    "RequestTooLargeError",
    "ResponseTooLargeError",
    "RunnerBusyError",
    "RunnerClosedError",
    "RunnerConnectionError",
    "RunnerPoolError",
    "RunnerProtocolError",
    "RunnerUnavailableError",
    "ServerBusyError",
]


class RunnerPoolError(Exception):
    """Raised for any failure that runnerpool itself reports; the root of its exceptions."""


class APIError(RunnerPoolError):
    """Raised when a call fails with an HTTP status code that the front end passes on.

    The port of Go's ``models.APIError``: a status code and a message. Subclasses fix both;
    ``APIError("boom", status_code=502)`` builds one of any code, as ``NewAPIError`` does.

    Args:
        message: The message the client sees; the class's default when omitted.
        status_code: The HTTP status code; the class's default when omitted.

    Attributes:
        status_code: The HTTP status code of this error.
        message: The message of this error.
    """

    default_status_code: ClassVar[int] = 500
    default_message: ClassVar[str] = "internal server error"

    def __init__(self, message: str | None = None, *, status_code: int | None = None) -> None:
        self.message: str = self.default_message if message is None else message
        self.status_code: int = self.default_status_code if status_code is None else status_code
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, status_code={self.status_code})"


class FuncError(APIError):
    """Raised when a call failed through the user's fault (their function, their input).

    The port of Go's ``models.FuncError`` marker: metrics blame the user, not the service, and
    the placer's fail-fast rule applies only to these.
    """

    default_status_code: ClassVar[int] = 502
    default_message: ClassVar[str] = "function failed"


class FunctionFailedError(FuncError):
    """Raised when the function failed (Go's ``ErrFunctionFailed``, 502 "function failed")."""


class CallTimeoutError(FuncError):
    """Raised when the function ran past its timeout (Go's ``ErrCallTimeout``, 504 "Timed out")."""

    default_status_code: ClassVar[int] = 504
    default_message: ClassVar[str] = "Timed out"


class ResponseTooLargeError(FuncError):
    """Raised when a function's response body exceeds the limit (Fn's 502)."""

    default_message: ClassVar[str] = "function response body too large"


class RequestTooLargeError(FuncError):
    """Raised when a request body exceeds the limit (Fn's 413)."""

    default_status_code: ClassVar[int] = 413
    default_message: ClassVar[str] = "Request content too large"


class ServerBusyError(APIError):
    """Raised when no runner took the call before placement gave up (503).

    Go's ``ErrCallTimeoutServerBusy``: every runner refused until the placer timeout, the pool
    stayed empty, or the client went away before any runner took the call.
    """

    default_status_code: ClassVar[int] = 503
    default_message: ClassVar[str] = "Timed out - server too busy"


class NoRunnerReachableError(ServerBusyError):
    """Raised when a whole pass found no runner reachable: placement stops at once (503).

    Every runner was ejected or could not be connected to, so waiting for the placer timeout
    would only hold the client: it gets 503 (with ``Retry-After``) at once instead.
    """

    default_message: ClassVar[str] = "No runner is reachable"


class NotPlacedError(RunnerPoolError):
    """Raised by ``Runner.try_exec`` when the runner did not take the call.

    Nothing was committed: the placer may try another runner. Any other exception raised by
    ``try_exec`` means the call was committed and failed, and it is never retried.
    """


class RunnerBusyError(NotPlacedError):
    """Raised when a runner refused the call with Fn's 503 too-busy NACK."""

    status_code: ClassVar[int] = 503

    def __init__(self, message: str = "Timed out - server too busy") -> None:
        # What BaseException.__init__ would do, without the super() call: a NACK is raised
        # on every refusal, and this is a fifth of its cost (docs/benchmarks.md, Placement).
        self.args = (message,)


class RunnerClosedError(NotPlacedError):
    """Raised when a call is tried on a runner that was already closed."""

    def __init__(self, message: str = "Runner is closed") -> None:
        super().__init__(message)


class PartialRunnersError(RunnerPoolError):
    """Raised by ``RunnerPool.runners`` to give runners and an error together.

    Go's ``Runners`` may return a list and an error at once: the placer still tries the
    runners, and if none takes the call, placement fails with the pool's error rather than
    with 503. A pool that knows only part of its runners (say, a discovery service that
    failed after a partial answer) raises this.

    Args:
        runners: The runners to try anyway.
        error: The pool's error, raised by the placer if no runner takes the call.
    """

    def __init__(self, runners: Sequence[Runner], error: BaseException) -> None:
        super().__init__(str(error))
        self.runners = runners
        self.error = error


class RunnerUnavailableError(NotPlacedError):
    """Raised when a runner cannot be reached, before it took the call."""


class RunnerConnectionError(RunnerPoolError):
    """Raised when the connection to a runner fails after the runner took the call.

    The call was committed: its outcome is unknown, and it is not retried elsewhere.

    Args:
        message: What happened.
        grpc_status: The gRPC status code the stream ended with, if any.
    """

    def __init__(self, message: str, *, grpc_status: int | None = None) -> None:
        super().__init__(message)
        self.grpc_status = grpc_status


class RunnerProtocolError(RunnerPoolError):
    """Raised when a runner that took the call breaks the runner protocol.

    For example, its stream ends before ``CallFinished`` (Fn reports ``EOF``), or a message
    follows ``CallFinished`` (Fn's "Purerunner missing EOF response").
    """
