r"""Go's ``encoding/json``, and the ``strconv`` and ``time`` text rules under it, for Fn's bytes.

Fn builds with Go 1.13 (``go 1.13`` in its ``go.mod``; its CI pins Go 1.13.15). That encoder
differs from Python's :mod:`json` in ways that show in the output:

* ``<``, ``>`` and ``&`` are written ``\u003c``, ``\u003e`` and ``\u0026``, and U+2028 and
  U+2029 ``\u2028`` and ``\u2029``, even inside the raw JSON that ``MarshalJSON`` methods return.
* Control characters other than ``\n``, ``\r`` and ``\t`` are written ``\u00XX`` in lowercase
  hex. The short forms ``\b`` and ``\f`` only arrived in Go 1.22, so they are ``\u0008`` and
  ``\u000c`` here.
* Other text, DEL (U+007F) included, is written as UTF-8 without escapes.

Decoding wraps :class:`json.JSONDecoder` and walks objects member by member, so that callers get
each member's exact source text besides its value; Go hands that raw text to ``UnmarshalJSON``
methods. Python's grammar is Go's once ``NaN`` and ``Infinity`` are refused. Go then stores
numbers in integer fields with ``strconv`` (:func:`parse_int`); Fn's own types read floats with
``strconv.ParseFloat`` (:func:`parse_float`) and times with ``time.Parse`` (:func:`parse_time`).

Go's bytes may hold invalid UTF-8 and Python's text may hold lone surrogates. Go turns invalid
UTF-8 in decoded strings into U+FFFD, one for each bad byte; :func:`clean` does the same for the
surrogates that bad bytes (or unpaired ``\ud800`` escapes) become here.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple, TypeVar

__all__ = [
    "INT32",
    "INT64",
    "UINT32",
    "UINT64",
    "GoInt",
    "Member",
    "Number",
    "Object",
    "clean",
    "compact",
    "encode_map",
    "escape_html",
    "fold_key",
    "format_time",
    "kind",
    "parse_float",
    "parse_int",
    "parse_object",
    "parse_time",
    "quote",
    "validate",
]


_V = TypeVar("_V")


class Number:
    """A JSON number kept as its source text, because Go parses it per target type.

    Attributes:
        text: The number exactly as written, such as ``"-0"`` or ``"1e3"``.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return f"Number({self.text!r})"


class Object(tuple[tuple[str, object], ...]):
    """A decoded JSON object: its ``(key, value)`` members in source order, duplicates kept."""

    __slots__ = ()


class Member(NamedTuple):
    """One member of a JSON object.

    Attributes:
        key: The decoded key.
        value: The decoded value: ``str``, :class:`Number`, ``bool``, ``None``, ``list`` or
            :class:`Object`.
        raw: The value's exact source text.
    """

    key: str
    value: object
    raw: str


class GoInt(NamedTuple):
    """A Go integer type.

    Attributes:
        name: Its Go name, such as ``"int32"``.
        low: Its smallest value.
        high: Its largest value.
    """

    name: str
    low: int
    high: int


INT32 = GoInt("int32", -(2**31), 2**31 - 1)
UINT32 = GoInt("uint32", 0, 2**32 - 1)
INT64 = GoInt("int64", -(2**63), 2**63 - 1)
UINT64 = GoInt("uint64", 0, 2**64 - 1)


def _refuse_constant(name: str) -> object:
    raise ValueError(f"invalid character in JSON: {name} is not a JSON value")


_DECODER = json.JSONDecoder(
    object_pairs_hook=Object,
    parse_int=Number,
    parse_float=Number,
    parse_constant=_refuse_constant,
)
_DIGITS = "[0-9](?:_?[0-9])*"
_HEX = "[0-9a-fA-F]"
# strconv.ParseFloat's syntax: Go literals, with "_" only between digits (or after "0x").
_GO_DECIMAL = re.compile(
    rf"[+-]?(?:{_DIGITS}(?:\.(?:{_DIGITS})?)?|\.{_DIGITS})(?:[eE][+-]?{_DIGITS})?"
)
_GO_HEX = re.compile(
    rf"[+-]?0[xX](?:(?:_?{_HEX})+(?:\.(?:{_HEX}(?:_?{_HEX})*)?)?|\.{_HEX}(?:_?{_HEX})*)"
    rf"[pP][+-]?{_DIGITS}"
)
_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{1,2}):([0-9]{2}):([0-9]{2})"
    # The ".000" and ".000000" layouts read their digits with atoi, so ".+12" is ".012".
    r"(?:\.([0-9]+)|\.([+-])([0-9]{2}|[0-9]{5}))?"
    # The zone's hours and minutes are read with atoi too, so "+-1:00" is "-01:00".
    r"(?:Z|([+-])([0-9]{2}|[+-][0-9]):([0-9]{2}|[+-][0-9]))"
)
_WS = re.compile(r"[ \t\n\r]*")
_STRING_OR_WS = re.compile(r'("[^"\\]*(?:\\.[^"\\]*)*")|[ \t\n\r]+', re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")
_REPLACE_SURROGATES = dict.fromkeys(map(chr, range(0xD800, 0xE000)), "\ufffd")
_HTML_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_SURROGATES = str.maketrans(_REPLACE_SURROGATES)
_HTML = str.maketrans({**_HTML_ESCAPES, **_REPLACE_SURROGATES})
_QUOTE = str.maketrans(
    {
        **{chr(c): f"\\u{c:04x}" for c in range(0x20)},
        "\n": "\\n",
        "\r": "\\r",
        "\t": "\\t",
        '"': '\\"',
        "\\": "\\\\",
        **_HTML_ESCAPES,
        **dict.fromkeys(_REPLACE_SURROGATES, "\\ufffd"),
    }
)
_NEEDS_QUOTING = re.compile('[\x00-\x1f"\\\\<>&\u2028\u2029\ud800-\udfff]')
_KINDS = {str: "string", Number: "number", type(None): "null", list: "array"}
# Go matches keys to struct fields case-insensitively, and also folds U+017F to "s" and the
# Kelvin sign to "k"; field names are lowercase ASCII, so folding the key is enough.
_FOLD = {**{c: c + 32 for c in range(ord("A"), ord("Z") + 1)}, 0x017F: ord("s"), 0x212A: ord("k")}


def quote(s: str) -> str:
    r"""Encode a string as Go's ``json.Marshal`` does, HTML-safe escaping included.

    Args:
        s: The text to encode.

    Returns:
        The JSON string literal, quotes included. Lone surrogates become ``\ufffd``, as Go
        writes invalid UTF-8.
    """
    if _NEEDS_QUOTING.search(s) is None:
        return f'"{s}"'
    return f'"{s.translate(_QUOTE)}"'


def encode_map(mapping: Mapping[str, _V], encode: Callable[[str, _V], str]) -> str | None:
    """Encode a Go map with string keys, or omit it when empty (``omitempty``).

    Args:
        mapping: The map.
        encode: Encodes one value, given its key (for error messages) and the value.

    Returns:
        The JSON object with keys sorted as Go sorts them, or ``None`` when ``mapping`` is
        empty. Python orders ``str`` by code point, which is Go's UTF-8 byte order.
    """
    if not mapping:
        return None
    return "{" + ",".join(f"{quote(k)}:{encode(k, mapping[k])}" for k in sorted(mapping)) + "}"


def escape_html(raw: str) -> str:
    """Apply the escaping Go's encoder gives the output of ``MarshalJSON`` methods.

    Args:
        raw: Valid JSON text.

    Returns:
        ``raw`` with ``<``, ``>``, ``&``, U+2028 and U+2029 escaped (they can only occur in
        strings) and lone surrogates replaced by U+FFFD.
    """
    return raw.translate(_HTML)


def compact(raw: str) -> str:
    """Remove insignificant whitespace from valid JSON text, as Go's ``json.Compact`` does.

    Nothing else changes: numbers and escapes keep their exact spelling.

    Args:
        raw: Valid JSON text.

    Returns:
        The text without whitespace outside strings.
    """
    return _STRING_OR_WS.sub(lambda m: m.group(1) or "", raw)


def clean(s: str) -> str:
    """Replace lone surrogates by U+FFFD, as Go's decoder replaces invalid UTF-8.

    Args:
        s: Decoded text.

    Returns:
        ``s``, with every surrogate code point replaced.
    """
    if s.isascii() or _SURROGATE.search(s) is None:
        return s
    return s.translate(_SURROGATES)


def fold_key(key: str) -> str:
    """Fold an object key the way Go matches keys to struct fields.

    Args:
        key: A decoded object key.

    Returns:
        The key to compare with a lowercase ASCII field name.
    """
    return key.translate(_FOLD)


def kind(value: object) -> str:
    """Name a decoded JSON value's type as Go's error messages do.

    Args:
        value: A value from :func:`parse_object`.

    Returns:
        ``"string"``, ``"number"``, ``"bool"``, ``"null"``, ``"array"`` or ``"object"``.
    """
    if isinstance(value, bool):
        return "bool"
    return _KINDS.get(type(value), "object")


def parse_int(text: str, go: GoInt) -> int | None:
    """Convert a JSON number to a Go integer type, as ``encoding/json`` does.

    Args:
        text: The number's source text.
        go: The target type.

    Returns:
        The value, or ``None`` where Go fails: a fraction or exponent (even ``1.0``), any
        sign for an unsigned type (even ``-0``), or a value out of range.
    """
    digits = text[1:] if text.startswith("-") and go.low < 0 else text
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 20:
        return None
    value = int(text)
    return value if go.low <= value <= go.high else None


def parse_float(text: str) -> float | None:
    """Parse a number with the syntax of Go 1.13's ``strconv.ParseFloat``.

    Decimal and hexadecimal (``0x1.8p1``) forms are read, with ``_`` between digits.
    Infinities and NaN, which Go spells out in words, are not, nor are out-of-range values.

    Args:
        text: The text, without surrounding space.

    Returns:
        The nearest float, or ``None`` if Go would report an error or a special value.
    """
    try:
        if _GO_DECIMAL.fullmatch(text):
            value = float(text.replace("_", ""))
        elif _GO_HEX.fullmatch(text):
            value = float.fromhex(text.replace("_", ""))
        else:
            return None
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def format_time(t: datetime) -> str:
    """Format an aware datetime with Go's layout ``2006-01-02T15:04:05.000Z07:00``.

    Args:
        t: The time; its zone gives the offset written.

    Returns:
        The text, milliseconds truncated, ``Z`` for a zero offset and ``+hh:mm`` otherwise.
    """
    offset = t.utcoffset()
    seconds = 0 if offset is None else int(offset.total_seconds())
    # Go writes whole minutes of the offset, truncated toward zero, and "Z" only for 0.
    minutes = abs(seconds) // 60
    sign = "-" if seconds <= -60 else "+"
    zone = "Z" if seconds == 0 else f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        f".{t.microsecond // 1000:03d}{zone}"
    )


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time as Go 1.13's ``time.Parse`` does with Fn's layouts.

    Fn tries ``RFC3339Micro``, ``RFC3339Millis``, ``RFC3339`` and ``RFC3339Nano`` in turn.
    Together they take any number of fraction digits (the first nine count), a one-digit
    hour, and a few ``atoi`` leniencies; they refuse a lowercase ``t`` or ``z``.

    Args:
        text: The time text.

    Returns:
        An aware datetime (UTC for a zero offset), truncated to microseconds.

    Raises:
        ValueError: If Go refuses the text, or it falls outside what ``datetime`` can hold
            (year 0, offsets of 24 hours or more).
    """
    match = _TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"cannot parse {text!r} as an RFC 3339 time")
    year, month, day, hour, minute, second, fraction, fsign, fdigits, zsign, zh, zm = match.groups()
    if fdigits is not None:
        if fsign == "-" and int(fdigits):
            raise ValueError(f"fractional second out of range in {text!r}")
        fraction = "0" + fdigits
    offset = 0 if zsign is None else (int(zh) * 60 + int(zm)) * (-60 if zsign == "-" else 60)
    try:
        zone = UTC if offset == 0 else timezone(timedelta(seconds=offset))
        fields = (int(year), int(month), int(day), int(hour), int(minute), int(second))
        return datetime(*fields, int((fraction or "0")[:6].ljust(6, "0")), tzinfo=zone)
    except ValueError as exc:
        raise ValueError(f"cannot represent {text!r}: {exc}") from exc


def _skip(text: str, pos: int) -> int:
    match = _WS.match(text, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _syntax_error(text: str, pos: int, expected: str) -> ValueError:
    return json.JSONDecodeError(f"Expecting {expected}", text, pos)


def _expect_end(text: str, pos: int) -> None:
    pos = _skip(text, pos)
    if pos != len(text):
        raise _syntax_error(text, pos, "end of data")


def _value(text: str, pos: int) -> tuple[object, int]:
    try:
        value, end = _DECODER.raw_decode(text, pos)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc
    return value, end


def _members(text: str, pos: int) -> tuple[list[Member], int]:
    members: list[Member] = []
    pos = _skip(text, pos + 1)
    if text.startswith("}", pos):
        return members, pos + 1
    while True:
        if not text.startswith('"', pos):
            raise _syntax_error(text, pos, "property name enclosed in double quotes")
        key, pos = _value(text, pos)
        pos = _skip(text, pos)
        if not text.startswith(":", pos):
            raise _syntax_error(text, pos, "':' delimiter")
        start = _skip(text, pos + 1)
        value, end = _value(text, start)
        members.append(Member(str(key), value, text[start:end]))
        pos = _skip(text, end)
        if text.startswith("}", pos):
            return members, pos + 1
        if not text.startswith(",", pos):
            raise _syntax_error(text, pos, "',' delimiter")
        pos = _skip(text, pos + 1)


def validate(raw: str) -> None:
    """Check that text is exactly one JSON value, optionally surrounded by whitespace.

    Args:
        raw: The text to check.

    Raises:
        ValueError: If it is not valid JSON.
    """
    _, end = _value(raw, _skip(raw, 0))
    _expect_end(raw, end)


def parse_object(data: str | bytes, type_name: str) -> list[Member] | None:
    """Parse a document that Go would unmarshal into a struct.

    Bytes are read as UTF-8, each invalid byte standing for one U+FFFD as in Go.

    Args:
        data: The whole document.
        type_name: The Go type, for error messages.

    Returns:
        The object's members in source order, or ``None`` when the document is ``null``
        (which Go accepts, leaving the struct unchanged).

    Raises:
        ValueError: If the document is not valid JSON, or is neither an object nor ``null``.
    """
    text = data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data
    start = _skip(text, 0)
    if text.startswith("{", start):
        members, end = _members(text, start)
        _expect_end(text, end)
        return members
    value, end = _value(text, start)
    # Go checks the whole document's syntax before it looks at types.
    _expect_end(text, end)
    if value is not None:
        raise ValueError(f"json: cannot unmarshal {kind(value)} into Go value of type {type_name}")
    return None
