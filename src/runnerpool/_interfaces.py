"""The contracts between placers, runner pools, runners and calls.

The port of Go's ``runnerpool`` interfaces. They are structural (``typing.Protocol``), like Go
interfaces: a user's own runner or pool needs no base class, only the right methods.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._call import RunnerTimings
    from ._config import PlacerConfig
    from ._model import Call
    from ._status import RunnerStatus

__all__ = ["LogWriter", "Placer", "ResponseWriter", "Runner", "RunnerCall", "RunnerPool"]


class ResponseWriter(Protocol):
    """Where a runner writes a call's response: headers, then a status, then the body.

    The Python form of Go's ``http.ResponseWriter`` as a runner uses it.
    """

    def add_header(self, name: str, value: str) -> None:
        """Add one response header value (a header may have several)."""

    def write_header(self, status_code: int) -> None:
        """Set the response's HTTP status code."""

    async def write(self, data: bytes) -> None:
        """Write part of the response body.

        Raises:
            Exception: If the response cannot take the data (for example it is too large);
                the call then fails with that error.
        """


class LogWriter(Protocol):
    """Where a call's function output (stdout and stderr) goes, like ``io.BytesIO``."""

    def write(self, data: bytes, /) -> int:
        """Write bytes of log output and return how many were written."""


class RunnerCall(Protocol):
    """A call as the placers and runners see it: its model, body, response and accounting.

    The port of Go's ``RunnerCall``.
    """

    @property
    def slot_hash_id(self) -> str:
        """The hex slot key that picks the hot process to run on; ``""`` lets the runner decide."""

    @property
    def extensions(self) -> Mapping[str, str]:
        """Extra key/values for the runner (Fn's call extensions)."""

    @property
    def response_writer(self) -> ResponseWriter:
        """Where the runner writes the response."""

    @property
    def stderr(self) -> LogWriter:
        """Where the function's log output goes."""

    @property
    def model(self) -> Call:
        """The call's model: function, app, image, limits, headers, config."""

    @property
    def deadline(self) -> float | None:
        """When the client stops waiting, on the running loop's clock; ``None`` for never.

        Past it, the call is a client timeout: no new attempt starts, and an attempt in
        flight is cancelled.
        """

    @property
    def user_execution_time(self) -> float | None:
        """Seconds spent in the user's code so far; ``None`` until the first add."""

    #: The address of the runner that took the call: a runner sets it when it commits (and
    #: clears it if it then refuses). The load balancer's logs name it.
    runner_address: str | None

    #: The timings the runner reported when the call finished; the load balancer records
    #: them as its ``lb_runner_*_latency`` metrics.
    runner_timings: RunnerTimings | None

    def request_body(self) -> AsyncIterator[bytes]:
        """Return a fresh iterator over the whole request body.

        Every attempt on every runner reads the body from its start, so each call of this
        method must start over.
        """

    def add_user_execution_time(self, seconds: float) -> None:
        """Add time that the runner spent executing the user's code."""


class Runner(Protocol):
    """One runner: a process that may take a call and run it.

    The port of Go's ``Runner``, whose ``TryExec`` returns ``(placed bool, err error)``.
    Here :meth:`try_exec` raises instead:

    * returning means the call was committed and succeeded;
    * raising :class:`~runnerpool.NotPlacedError` (or a subclass, such as the 503 NACK
      :class:`~runnerpool.RunnerBusyError`) means the runner did not take the call, and the
      placer may try another runner;
    * raising anything else means the call was committed and failed. It is never retried.

    A runner closes with :meth:`aclose`. The project's runners also close at the end of
    ``async with`` (they subclass :class:`~runnerpool.AsyncResource`); a user's own runner
    needs only :meth:`aclose`.
    """

    @property
    def address(self) -> str:
        """The runner's address, for logs and metrics."""

    async def try_exec(self, call: RunnerCall) -> None:
        """Offer the call to this runner and, if it takes it, run it to the end.

        Raises:
            NotPlacedError: If the runner did not take the call.
            Exception: Any other error: the call was taken and failed.
        """

    async def status(self) -> RunnerStatus:
        """Ask the runner for its health and load."""

    async def aclose(self) -> None:
        """Stop taking calls, let the calls in flight finish, then release the connection.

        Closing twice is harmless. ``close()`` is a deprecated name for it.
        """


class RunnerPool(Protocol):
    """The runners a call may go to. The port of Go's ``RunnerPool``.

    Like a :class:`Runner`, a pool closes with :meth:`aclose` (Go's ``Shutdown``); the
    project's pools also close at the end of ``async with``.
    """

    async def runners(self, call: RunnerCall) -> Sequence[Runner]:
        """Return the runners that may take the call, in no particular order.

        The placer calls this once per pass, so a pool may change between passes.

        Raises:
            Exception: If the pool cannot give runners for this call; the placer keeps
                trying until it times out, except for a user's 502 (a
                :class:`~runnerpool.FuncError`) with no runners, where it gives up at once.
                :class:`~runnerpool.PartialRunnersError` gives runners and an error together.
        """

    async def aclose(self) -> None:
        """Close every runner; report the first error after trying them all.

        Closing twice is harmless. ``shutdown()`` is a deprecated name for it.
        """


class Placer(Protocol):
    """A placement strategy: in what order a call tries the runners of a pool.

    The port of Go's ``Placer``.
    """

    @property
    def config(self) -> PlacerConfig:
        """The placer's timeouts and back-off."""

    async def place_call(self, pool: RunnerPool, call: RunnerCall) -> None:
        """Find a runner that takes the call, and run it there.

        Returns once the call was placed and succeeded.

        Raises:
            ServerBusyError: If no runner took the call before the placer timeout or the
                call's deadline.
            Exception: The committed call's own error, or the pool's last error.
            asyncio.CancelledError: If the caller cancelled.
        """
