"""Values that travel with a request through the tasks that serve it."""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["request_id", "runner_address"]

#: The id of the request being served (Fn's request id), if the front end set one. Runners
#: send it to the runner as the ``fn_request_id`` gRPC metadata, for correlating logs.
request_id: ContextVar[str | None] = ContextVar("runnerpool_request_id", default=None)

#: The address of the runner that took the call being served, once one did. Set by
#: ``GrpcRunner`` at its commit point, for the load balancer's logs.
runner_address: ContextVar[str | None] = ContextVar("runnerpool_runner_address", default=None)
