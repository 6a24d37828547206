"""HTTP triggers as Fn serves them: the source matched, the headers rewritten, the answer mapped.

``ANY /t/{app}`` and ``ANY /t/{app}/{source...}`` call the app's trigger whose source is the
decoded path after the app name, leading ``/`` included (``/t/app`` and ``/t/app/`` are both
``/``), matched exactly and case-sensitively; the query plays no part.

The function gets the client's headers as Fn's ``api/server/runner_httptrigger.go`` rewrites
them (hop-by-hop headers removed, every other one but ``Content-Type`` renamed
``Fn-Http-H-{Name}``, so a client cannot spoof ``Fn-*`` headers), plus ``Fn-Http-Method``,
``Fn-Http-Request-Url`` and ``Fn-Intent: httprequest``. Its answer comes back with its
``Fn-Http-H-{Name}`` headers unprefixed, ``Content-Type`` and ``Fn-Call-Id`` kept and every
other header dropped; the status is the runner's when 400 or more, else ``Fn-Http-Status``,
else 200.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from .._errors import APIError
from .._headers import HOP_BY_HOP
from ._calls import canonical_header

__all__ = [
    "FN_HTTP_PREFIX",
    "request_url",
    "trigger_headers",
    "trigger_response",
    "trigger_source",
]

#: The prefix of the client's headers as the function sees them, and of its HTTP headers.
FN_HTTP_PREFIX = "Fn-Http-H-"

#: ``strconv.Atoi``'s syntax: an optional sign, then decimal digits.
_GO_INT = re.compile(r"[+-]?[0-9]+")


def trigger_source(path_rest: str | None) -> str:
    """Return the trigger source of a ``/t/{app}`` path: ``"/"`` plus what follows the app.

    Args:
        path_rest: The decoded path after ``/t/{app}/``, or ``None`` for ``/t/{app}``.
    """
    return "/" + (path_rest or "")


def request_url(scheme: str, host: str, raw_path: bytes, query_string: bytes) -> str:
    """Return the call's URL as Fn builds it: the scheme, the ``Host`` header, the raw URI.

    The request target is kept as received: its %-escapes and its query, undecoded.
    """
    target = raw_path.decode("latin-1")
    if query_string:
        target += "?" + query_string.decode("latin-1")
    return f"{scheme}://{host}{target}"


def trigger_headers(
    headers: Iterable[tuple[str, str]], *, method: str, url: str
) -> list[tuple[str, str]]:
    """Return the headers a trigger's function gets, from the client's, as Fn rewrites them.

    Args:
        headers: The client's headers in order; a name may repeat.
        method: The request's method.
        url: The call's URL (:func:`request_url`).

    Returns:
        ``(name, value)`` pairs in the client's order, then Fn's three headers.
    """
    rewritten: list[tuple[str, str]] = []
    te_trailers = False
    for name, value in headers:
        lower = name.lower()
        if lower == "te":
            te_trailers = te_trailers or any(
                token.strip().lower() == "trailers" for token in value.split(",")
            )
        elif lower == "host" or lower in HOP_BY_HOP:
            pass
        elif lower == "content-type":
            rewritten.append(("Content-Type", value))
        else:
            rewritten.append((FN_HTTP_PREFIX + canonical_header(name), value))
    if te_trailers:
        rewritten.append((FN_HTTP_PREFIX + "Te", "trailers"))
    rewritten += [
        ("Fn-Http-Method", method),
        ("Fn-Http-Request-Url", url),
        ("Fn-Intent", "httprequest"),
    ]
    return rewritten


def trigger_response(
    status: int, headers: Sequence[tuple[str, str]]
) -> tuple[int, list[tuple[str, str]]]:
    """Return the status and headers a trigger answers, from the runner's, as Fn maps them.

    Args:
        status: The status the runner reported.
        headers: The runner's response headers; a name may repeat.

    Returns:
        The status, and the headers in order: ``Fn-Http-H-{Name}`` unprefixed,
        ``Content-Type`` kept, every other header dropped (``Fn-Call-Id`` is the load
        balancer's to add).

    Raises:
        APIError: 502, if ``Fn-Http-Status`` is a number outside 200 to 599 (Go's server
            would panic on writing it).
    """
    mapped: list[tuple[str, str]] = []
    http_status: str | None = None
    for name, value in headers:
        lower = name.lower()
        if lower.startswith(FN_HTTP_PREFIX.lower()):
            if len(name) > len(FN_HTTP_PREFIX):
                mapped.append((name[len(FN_HTTP_PREFIX) :], value))
        elif lower == "content-type":
            mapped.append((name, value))
        elif lower == "fn-http-status" and http_status is None:
            http_status = value
    if status >= 400:
        return status, mapped
    if http_status is None or not _GO_INT.fullmatch(http_status):
        return 200, mapped
    code = int(http_status)
    if not 200 <= code <= 599:
        raise APIError(f"function answered an invalid HTTP status: {http_status}", status_code=502)
    return code, mapped
