r"""A fast decoder for the plain JSON of a call: what load balancers actually send.

``Call.from_json`` reproduces Go's decoder exactly (case-insensitive keys, duplicate keys,
``\u`` escapes, Go's number and time grammars), which costs about 66 µs per call: a fifth
of a runner's CPU per call. Load balancers send the plain form: lower-case keys, once each,
numbers as integers, dates in Go's millisecond layout. This module decodes that form with the
C JSON parser and answers ``None`` for anything else, which then takes the exact path; so
whenever it answers, it answers what the exact path would (a property test checks this).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from ._gojson import INT32, INT64, UINT32, UINT64, GoInt

__all__ = ["decode_plain"]

_TEXT = frozenset(
    (
        "id",
        "status",
        "image",
        "type",
        "payload",
        "url",
        "method",
        "syslog_url",
        "error",
        "app_id",
        "app_name",
        "trigger_id",
        "fn_id",
    )
)
_INTEGERS: dict[str, GoInt] = {
    "delay": INT32,
    "timeout": INT32,
    "idle_timeout": INT32,
    "tmpfs_size": UINT32,
    "memory": UINT64,
    "execution_duration": INT64,
}
_TIMES = frozenset(("completed_at", "created_at", "started_at"))
_ZERO_TIME = "0001-01-01T00:00:00.000Z"
# Go's layout with milliseconds, from year 1000 on (earlier years take the exact path).
_LAYOUT = re.compile(r"[1-9]\d{3}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(?:Z|[+-]\d\d:\d\d)")


class _NotPlain(Exception):
    """A duplicate key: Go merges them, so the exact path decides."""


def _unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _NotPlain
    return result


def _integer(token: str) -> int:
    # Go refuses "-0" for unsigned fields; Python would read 0. Never sent by Go anyway.
    if token == "-0":
        raise _NotPlain
    return int(token)


def decode_plain(text: str | bytes) -> dict[str, object] | None:
    """Decode the plain JSON of a call into ``Call`` keyword arguments, or answer ``None``.

    ``None`` means "not plain": the caller decodes with the exact parser, which also gives
    the proper error for malformed input.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError:
            return None
    if "\\u" in text:  # escapes (surrogates above all) are the exact path's business
        return None
    try:
        document = json.loads(text, object_pairs_hook=_unique, parse_int=_integer)
    except (ValueError, RecursionError, _NotPlain):
        return None
    if type(document) is not dict:
        return None
    fields: dict[str, object] = {}
    for key, value in document.items():
        if key in _TEXT:
            if type(value) is not str:
                return None
        elif key in _INTEGERS:
            go = _INTEGERS[key]
            if type(value) is not int or not go.low <= value <= go.high:
                return None
        elif key in _TIMES:
            if type(value) is not str:
                return None
            if value == _ZERO_TIME:
                value = None
            elif _LAYOUT.fullmatch(value):
                try:
                    value = datetime.fromisoformat(value)
                except ValueError:
                    return None
                if value.utcoffset() == UTC.utcoffset(None):
                    value = value.replace(tzinfo=UTC)
            else:
                return None
        elif key == "config":
            if type(value) is not dict or any(type(v) is not str for v in value.values()):
                return None
        elif key == "headers":
            if type(value) is not dict or any(
                type(v) is not list or any(type(item) is not str for item in v)
                for v in value.values()
            ):
                return None
        else:  # cpus, annotations, stats, unknown or odd-case keys
            return None
        fields[key] = value
    return fields
