"""Values that travel with a request through the tasks that serve it."""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["request_id"]

#: The id of the request being served (Fn's request id), if the front end set one. Runners
#: send it to the runner as the ``fn_request_id`` gRPC metadata, for correlating logs.
request_id: ContextVar[str | None] = ContextVar("runnerpool_request_id", default=None)
