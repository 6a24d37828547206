"""Values that travel with a request through the tasks that serve it."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .placers import PlacerTracker

__all__ = ["Placement", "placement", "request_id"]

#: The id of the request being served (Fn's request id), if the front end set one. Runners
#: send it to the runner as the ``fn_request_id`` gRPC metadata, for correlating logs.
request_id: ContextVar[str | None] = ContextVar("runnerpool_request_id", default=None)


@dataclass(eq=False, slots=True)
class Placement:
    """What the placement of the call being served did: for the load balancer's access log.

    The front end sets a fresh one in :data:`placement` before the call; the tasks that
    place the call share the object, and the placer's tracker fills it in.

    Attributes:
        tracker: The placement's tracker, once placement started.
        runner: The address of the runner that took the call (for a detached call, the one
            that acknowledged it), once one did.
        fn_id: The function of the call, once placement started (a trigger's path does not
            name it).
    """

    tracker: PlacerTracker | None = None
    runner: str | None = None
    fn_id: str | None = None

    @property
    def attempts(self) -> int:
        """How many runners were offered the call so far (0 before placement)."""
        return 0 if self.tracker is None else self.tracker.attempts


#: The :class:`Placement` of the call being served, if the front end wants one.
placement: ContextVar[Placement | None] = ContextVar("runnerpool_placement", default=None)
