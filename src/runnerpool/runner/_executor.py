"""The executor interface: what runs a call once a runner has taken it.

A runner server admits or refuses calls; an executor runs the calls it admitted. Admission
is the executor's to decide, against the runner's :class:`~runnerpool.runner.Capacity`: an
in-process function needs its memory for the call, while a hot process may already hold it.
The server then hands the executor an :class:`Execution`: the call's model, its request body
as it streams in from the load balancer, and a response writer whose headers, status and body
stream back.
An executor ends a call by returning (success) or raising: an :class:`~runnerpool.APIError`
keeps its code and message, a :class:`~runnerpool.FuncError` is also blamed on the user, and
any other exception is reported as the function's failure (502).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .._interfaces import LogWriter, ResponseWriter
    from .._model import Call
    from ._capacity import Capacity

__all__ = ["Admission", "Execution", "Executor", "Reporting"]


class Admission(Protocol):
    """What an admitted call holds until it ends (a reservation, a hot process)."""

    def release(self) -> None:
        """Give back what the call held; a second release does nothing."""


@dataclass(frozen=True, slots=True, eq=False)
class Execution:
    """One committed call, as an executor sees it.

    Attributes:
        model: The call's model, as the load balancer sent it (created time reset by the
            runner, as Fn's runner does).
        extensions: The call's extensions from the load balancer.
        slot_key: The raw slot key the load balancer asked for, or ``None`` to let the
            executor compute its own (Fn's LBs never set one).
        body: The request body, as it arrives; read it once.
        response: Where the response goes: headers and status first, then the body.
        stderr: Where the function's log output goes.
        deadline: When the call must end, on the ``time.monotonic()`` clock (from the
            model's ``timeout``), or ``None``.
        detached: Whether the load balancer has already answered the client (202); the
            response is then discarded.
        admission: What :meth:`Executor.admit` gave the call.
    """

    model: Call
    extensions: Mapping[str, str]
    slot_key: bytes | None
    body: AsyncIterator[bytes]
    response: ResponseWriter
    stderr: LogWriter
    deadline: float | None
    detached: bool
    admission: Admission | None = None


class Executor(Protocol):
    """Runs committed calls. The runner server owns admission; the executor owns running.

    Implementations: :class:`~runnerpool.runner.InProcessExecutor` runs registered Python
    callables; an executor of Fn FDK functions runs them as hot local processes.
    """

    def admit(
        self,
        model: Call,
        slot_key: bytes | None,
        extensions: Mapping[str, str],
        capacity: Capacity,
    ) -> Admission | None:
        """Take what the call needs to start now, or return ``None`` (the runner NACKs).

        It must not wait: runners refuse at once, and the load balancer queues.

        Raises:
            APIError: The call cannot run here at all (e.g. an unknown image); the runner
                reports this error instead of a NACK.
        """

    async def execute(self, execution: Execution) -> None:
        """Run the call to its end, writing its response.

        Raises:
            APIError: The call failed with this status and message.
            Exception: The function failed (reported as 502 "function failed").
        """

    async def aclose(self) -> None:
        """Stop: end what the executor still runs and release its resources."""


@runtime_checkable
class Reporting(Protocol):
    """An executor that reports its state in the runner's status (``custom_status``)."""

    def report(self) -> dict[str, str]:
        """Return the executor's state, e.g. its processes and environments."""
