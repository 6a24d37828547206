"""Placer configuration: the port of Go's ``runnerpool.PlacerConfig``."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, fields
from fractions import Fraction

__all__ = ["PlacerConfig", "parse_go_duration"]

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

    Raises:
        ValueError: If a field is negative, not finite, or not a number; the message names it.
    """

    retry_all_delay: float = 0.010
    placer_timeout: float = 360.0
    detached_placer_timeout: float = 30.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            # bool is an int in Python, but True seconds is a bug, not a duration.
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(
                    f"PlacerConfig.{field.name} must be a number of seconds, "
                    f"not {type(value).__name__}"
                )
            if not math.isfinite(value) or value < 0:
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
            text: A JSON object with any of ``retry_all_delay``, ``placer_timeout`` and
                ``detached_placer_timeout``.

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
        values = {name: _seconds_from_json(name, value) for name, value in raw.items()}
        return cls(**values)

    def to_json(self) -> str:
        """Write the configuration as Fn writes it: Go's integer nanoseconds, in field order.

        Returns:
            Compact JSON, e.g.
            ``{"retry_all_delay":10000000,"placer_timeout":360000000000,...}``.
        """
        return json.dumps(
            {field.name: _nanoseconds(getattr(self, field.name)) for field in fields(self)},
            separators=(",", ":"),
        )


def _nanoseconds(seconds: float) -> int:
    # Fraction is exact, so 0.01 s gives 10_000_000 ns and not a neighbour of it.
    return round(Fraction(seconds) * _NS_PER_SECOND)


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
