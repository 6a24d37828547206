"""The names of runnerpool's spans and span attributes (documented in the README's "Tracing").

HTTP attributes follow OpenTelemetry's semantic conventions; the rest are Fn's own terms.
"""

from __future__ import annotations

__all__ = [
    "ADMISSION_SPAN",
    "APP_ID",
    "ATTEMPT_SPAN",
    "CALL_ID",
    "EXECUTION_SPAN",
    "FN_ID",
    "HTTP_METHOD",
    "HTTP_ROUTE",
    "HTTP_STATUS",
    "IMAGE",
    "OUTCOME",
    "PROCESS_START_SPAN",
    "RUNNER",
    "URL_PATH",
]

#: The load balancer's offer of a call to one runner (a child of the call's span).
ATTEMPT_SPAN = "runnerpool.attempt"
#: The runner deciding whether it takes the call (a child of the attempt).
ADMISSION_SPAN = "runnerpool.admission"
#: The runner running the call it took (a child of the attempt).
EXECUTION_SPAN = "runnerpool.execution"
#: A new function process starting for the call: a cold start (a child of the execution).
PROCESS_START_SPAN = "runnerpool.process_start"

HTTP_METHOD = "http.request.method"
HTTP_ROUTE = "http.route"
HTTP_STATUS = "http.response.status_code"
URL_PATH = "url.path"

#: Fn's call id (the ``Fn-Call-Id`` response header).
CALL_ID = "fn.call_id"
FN_ID = "fn.fn_id"
APP_ID = "fn.app_id"
IMAGE = "fn.image"
#: The ``host:port`` of the runner an attempt offered the call to.
RUNNER = "runnerpool.runner"
#: How an attempt or an admission ended: ``placed``/``nack``/``error`` and
#: ``admitted``/``nack``/``error``.
OUTCOME = "runnerpool.outcome"
