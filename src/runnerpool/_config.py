"""Placer configuration: the port of Go's ``runnerpool.PlacerConfig``."""

from __future__ import annotations

import json
import math
import re
from dataclasses import KW_ONLY, dataclass, fields
from fractions import Fraction
from typing import Any, Literal, TypeAlias, get_args

__all__ = ["BACKOFF_MODES", "BackoffMode", "PlacerConfig", "parse_go_duration"]

#: How a placer waits after a pass in which every runner refused: ``"fixed"`` is Fn's
#: constant ``retry_all_delay``; ``"exponential"`` is exponential back-off with full jitter;
#: ``"release"`` is exponential back-off that a release wakes early, and passes over the
#: runners that refused until a release or ``release_hold``; ``"fifo"`` does the same, but
#: waiting calls keep their place in a bounded queue, are woken in arrival order, and a call
#: the queue cannot serve before its deadline is refused at once.
BackoffMode: TypeAlias = Literal["fixed", "exponential", "release", "fifo"]
#: The names of :data:`BackoffMode`, for configuration and the command line.
BACKOFF_MODES: tuple[str, ...] = get_args(BackoffMode)

# Fn's keys: always written by to_json. Other keys are written only when not at their default,
# so a default configuration's JSON is exactly Fn's.
_FN_KEYS = frozenset({"retry_all_delay", "placer_timeout", "detached_placer_timeout"})
# Keys whose JSON value is a plain number, not a duration.
_NUMBER_KEYS = frozenset({"bounded_load_factor", "queue_limit"})
# Keys whose value is a whole number.
_INT_KEYS = frozenset({"queue_limit"})

_NS_PER_SECOND = 1_000_000_000

# Go's time.ParseDuration units, in nanoseconds ("µs" is U+00B5, "μs" is U+03BC: Go takes both).
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": _NS_PER_SECOND,
    "m": 60 * _NS_PER_SECOND,
    "h": 3600 * _NS_PER_SECOND,
}
_COMPONENT = re.compile(r"(\d+\.?\d*|\.\d+)([a-zA-Z\u00b5\u03bc]+)")


def parse_go_duration(text: str) -> int:
    """Parse a Go duration string such as ``"10ms"`` or ``"1m30.5s"`` into nanoseconds.

    Follows Go's ``time.ParseDuration``: a sequence of decimal numbers, each with a unit among
    ``ns``, ``us`` (or ``µs``), ``ms``, ``s``, ``m`` and ``h``, with an optional sign; ``"0"``
    alone is zero. Fractions of a nanosecond are truncated, as Go does.

    Args:
        text: The duration string.

    Returns:
        The duration in integer nanoseconds (negative if the string says so).

    Raises:
        ValueError: If the string is not a Go duration or names an unknown unit.
    """
    body = text
    sign = 1
    if body[:1] in ("+", "-"):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if body == "0":
        return 0
    if not body:
        raise ValueError(f"invalid duration {text!r}")
    total = Fraction(0)
    pos = 0
    while pos < len(body):
        match = _COMPONENT.match(body, pos)
        if match is None:
            raise ValueError(f"invalid duration {text!r}")
        number, unit = match.groups()
        if unit not in _UNITS:
            raise ValueError(f"unknown unit {unit!r} in duration {text!r}")
        total += Fraction(number) * _UNITS[unit]
        pos = match.end()
    return sign * math.floor(total)


@dataclass(frozen=True, slots=True)
class PlacerConfig:
    """How long a placer keeps trying runners, and how long it waits between passes.

    Defaults equal Go's ``NewPlacerConfig()``. Durations are seconds as floats; the JSON form
    (:meth:`from_json`, :meth:`to_json`) uses Fn's keys and Go's integer nanoseconds.

    Attributes:
        retry_all_delay: The pause after a pass in which every runner refused, before the
            next pass.
        placer_timeout: How long a placer may search for a runner for a call; it bounds the
            search, never a call a runner has already taken.
        detached_placer_timeout: The same bound for detached (asynchronous) calls.
        backoff: How to wait after a pass in which every runner refused (keyword only).
            ``"fixed"`` (the default, Fn's rule) waits ``retry_all_delay`` every time.
            ``"exponential"`` waits a random time, uniform in
            ``[0, min(backoff_max_delay, retry_all_delay * 2**(k - 1))]`` after pass ``k``
            (exponential back-off with full jitter). In both modes the wait ends at the
            placer's timeout or the request's deadline, whichever comes first.
            ``"release"`` waits as ``"exponential"`` does, but a call's wait ends early when
            one of this placer's calls ends on a runner (a release: one waiting call is
            woken per release), and runners that refused a call as busy are passed over, by
            every pass of every call, until one of this placer's calls on them ends or
            ``release_hold`` passes. A runner that refused a call of ``m`` MB is passed
            over only by calls of at least ``m`` MB.
            ``"fifo"`` passes over refusing runners as ``"release"`` does, but a call that
            found every runner refusing joins a queue and keeps its place in it until it is
            placed; while any call waits, new calls join at the back without trying runners.
            A release wakes, in arrival order, the waiting calls that fit together in the
            memory released (else the oldest), and a waiting call no release wakes tries
            again after ``release_hold``. A call finding the queue full (``queue_limit``), or whose
            expected wait (its place over the queue's recent drain rate) exceeds the time
            to its deadline or the placer's timeout, is refused at once (503).
        backoff_max_delay: The cap of an exponential back-off's wait (keyword only); the
            fixed mode ignores it.
        release_hold: How long the ``"release"`` mode passes over a runner that refused
            when no release comes (keyword only): capacity freed by another load balancer's
            calls is seen at the latest then. The other modes ignore it.
        bounded_load_factor: ``c`` of :class:`~runnerpool.BoundedLoadPlacer`: no runner
            takes more than ``ceil(c * average)`` of the placer's calls in flight while
            others have room (keyword only). At least 1; other placers ignore it.
        queue_limit: The most calls waiting in the ``"fifo"`` mode's queue (keyword only).
            At least 1; the other modes ignore it.

    Raises:
        ValueError: If a duration is negative, not finite, or not a number, ``backoff``
            is not a known mode, or ``bounded_load_factor`` is below 1 or not finite; the
            message names the field.
    """

    retry_all_delay: float = 0.010
    placer_timeout: float = 360.0
    detached_placer_timeout: float = 30.0
    _: KW_ONLY
    backoff: BackoffMode = "fixed"
    backoff_max_delay: float = 1.0
    release_hold: float = 1.0
    bounded_load_factor: float = 1.25
    queue_limit: int = 1024

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name == "backoff":
                if value not in BACKOFF_MODES:
                    raise ValueError(
                        f"PlacerConfig.backoff must be one of {', '.join(BACKOFF_MODES)}, "
                        f"got {value!r}"
                    )
                continue
            # bool is an int in Python, but True seconds is a bug, not a duration.
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(
                    f"PlacerConfig.{field.name} must be a number"
                    f"{'' if field.name in _NUMBER_KEYS else ' of seconds'}, "
                    f"not {type(value).__name__}"
                )
            if field.name in _INT_KEYS:
                if not (isinstance(value, int) or (math.isfinite(value) and value == int(value))):
                    raise ValueError(
                        f"PlacerConfig.{field.name} must be a whole number, got {value!r}"
                    )
                if value < 1:
                    raise ValueError(f"PlacerConfig.{field.name} must be >= 1, got {value!r}")
                object.__setattr__(self, field.name, int(value))
                continue
            if field.name == "bounded_load_factor":
                if not (math.isfinite(value) and value >= 1):
                    raise ValueError(
                        f"PlacerConfig.bounded_load_factor must be finite and >= 1, got {value!r}"
                    )
            elif not math.isfinite(value) or value < 0:
                raise ValueError(
                    f"PlacerConfig.{field.name} must be finite and >= 0, got {value!r}"
                )
            object.__setattr__(self, field.name, float(value))

    @classmethod
    def from_json(cls, text: str | bytes) -> PlacerConfig:
        """Read a configuration written with Fn's JSON keys.

        Each duration is either Go's integer nanoseconds (what Fn writes) or a Go duration
        string such as ``"10ms"`` or ``"1m30s"``. Missing keys keep their defaults.

        Args:
            text: A JSON object with any of Fn's ``retry_all_delay``, ``placer_timeout`` and
                ``detached_placer_timeout``, and runnerpool's ``backoff`` (a string),
                ``backoff_max_delay`` and ``release_hold`` (durations) and
                ``bounded_load_factor`` and ``queue_limit`` (numbers).

        Returns:
            The configuration.

        Raises:
            ValueError: If the text is not a JSON object, has an unknown key, or a value is
                negative, of the wrong type or has an unknown unit; the message names the field.
        """
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"placer config is not valid JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise ValueError("placer config must be a JSON object")
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"unknown placer config field(s): {', '.join(unknown)}")
        values: dict[str, Any] = {
            name: _backoff_from_json(value)
            if name == "backoff"
            else _number_from_json(name, value)
            if name in _NUMBER_KEYS
            else _seconds_from_json(name, value)
            for name, value in raw.items()
        }
        return cls(**values)

    def to_json(self) -> str:
        """Write the configuration as Fn writes it: Go's integer nanoseconds, in field order.

        Fn's three keys are always written; runnerpool's own keys only when they differ from
        their defaults, so a configuration using Fn's rule writes exactly Fn's JSON.

        Returns:
            Compact JSON, e.g.
            ``{"retry_all_delay":10000000,"placer_timeout":360000000000,...}``.
        """
        out: dict[str, object] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in _FN_KEYS or value != field.default:
                out[field.name] = (
                    value
                    if field.name == "backoff" or field.name in _NUMBER_KEYS
                    else _nanoseconds(value)
                )
        return json.dumps(out, separators=(",", ":"))


def _nanoseconds(seconds: float) -> int:
    # Fraction is exact, so 0.01 s gives 10_000_000 ns and not a neighbour of it.
    return round(Fraction(seconds) * _NS_PER_SECOND)


def _backoff_from_json(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(
            f"placer config field 'backoff' must be a string, not {type(value).__name__}"
        )
    if value not in BACKOFF_MODES:
        raise ValueError(
            f"placer config field 'backoff' must be one of {', '.join(BACKOFF_MODES)}, "
            f"got {value!r}"
        )
    return value


def _number_from_json(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(
            f"placer config field {name!r} must be a number, not {type(value).__name__}"
        )
    return float(value)


def _seconds_from_json(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(
            f"placer config field {name!r} must be integer nanoseconds or a duration string, "
            f"not {type(value).__name__}"
        )
    if isinstance(value, str):
        try:
            value = parse_go_duration(value)
        except ValueError as exc:
            raise ValueError(f"placer config field {name!r}: {exc}") from None
    if value < 0:
        raise ValueError(f"placer config field {name!r} must be >= 0, got {value}")
    return value / _NS_PER_SECOND
