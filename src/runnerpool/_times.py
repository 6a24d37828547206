"""Fn's time text: RFC 3339 with milliseconds (Go's ``common.DateTime``).

Fn writes every time in the call JSON and the runner protocol with the layout
``2006-01-02T15:04:05.000Z07:00``. :func:`format_time` writes that layout; :func:`parse_time`
reads RFC 3339 with any number of fraction digits, which covers it and Go's other RFC 3339
layouts.
"""

from __future__ import annotations

import re
from datetime import datetime

__all__ = ["format_time", "parse_time"]

# RFC 3339 only: datetime.fromisoformat alone would also take "2020-01-02", a space for "T"
# and a missing zone, none of which Go writes or reads.
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)", re.ASCII)


def format_time(t: datetime) -> str:
    """Format an aware datetime with Go's layout ``2006-01-02T15:04:05.000Z07:00``.

    Args:
        t: The time; its zone gives the offset written.

    Returns:
        The text, milliseconds truncated, ``Z`` for a zero offset and ``+hh:mm`` otherwise.

    Raises:
        ValueError: If ``t`` is naive (Go times always have a zone).
    """
    offset = t.utcoffset()
    if offset is None:
        raise ValueError("naive datetime; Go times always have a zone")
    seconds = int(offset.total_seconds())
    # Go writes whole minutes of the offset, truncated toward zero, and "Z" only for 0.
    minutes = abs(seconds) // 60
    sign = "-" if seconds <= -60 else "+"
    zone = "Z" if seconds == 0 else f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        f".{t.microsecond // 1000:03d}{zone}"
    )


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time such as ``2026-11-27T20:04:45.158Z``.

    Args:
        text: The time text, with a zone (``Z`` or ``+hh:mm``) and any number of fraction
            digits (those past microseconds are dropped).

    Returns:
        An aware datetime; a zero offset gives :data:`datetime.UTC` (as
        ``datetime.fromisoformat`` does, which reads the text once it is known to be RFC 3339).

    Raises:
        ValueError: If the text is not RFC 3339 or names no valid time.
    """
    if _RFC3339.fullmatch(text) is None:
        raise ValueError(f"cannot parse {text!r} as an RFC 3339 time")
    try:
        return datetime.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"cannot represent {text!r}: {exc}") from None
