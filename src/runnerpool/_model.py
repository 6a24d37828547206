"""Fn's call model, the port of Go's ``models.Call``, with the exact JSON Fn reads and writes.

Fn's load balancer sends a call to a runner as ``json.Marshal(call)`` in the gRPC field
``TryCall.models_call_json``, and the runner reads it with ``json.Unmarshal``.
:meth:`Call.to_json` writes the bytes Go writes, and :meth:`Call.from_json` reads what Go
reads, with Go's quirks: keys match fields case-insensitively, ``null`` leaves a field as it
was (but empties maps and lists and zeroes ``cpus``), a later duplicate key wins (map members
merge), and an empty time string is the Unix epoch.

Where Python cannot hold what Go holds, the port differs slightly: a header list or a metrics
map given as ``null`` reads as empty and is written ``[]`` or ``{}``, not ``null``; invalid
UTF-8 and lone surrogates become U+FFFD, in raw annotation values too; ``cpus`` of ``"NaN"``,
year 0 and zone offsets of 24 hours or more are refused; and a repeated ``stats`` key replaces
the list where Go would merge it element by element.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from ._gojson import (
    INT32,
    INT64,
    UINT32,
    UINT64,
    GoInt,
    Member,
    Number,
    Object,
    clean,
    compact,
    encode_map,
    escape_html,
    fold_key,
    format_time,
    kind,
    parse_float,
    parse_int,
    parse_object,
    parse_time,
    quote,
    validate,
)
from ._model_fast import decode_plain

__all__ = ["MAX_MILLI_CPUS", "Call", "Stat"]

MAX_MILLI_CPUS = 1_024_000
"""The most milli-CPUs a call may ask for: 1024 CPUs (Go's ``models.MaxMilliCPUs``)."""

_ZERO_TIME_JSON = "0001-01-01T00:00:00.000Z"
_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Stat:
    """One sample of a call's resource use (Go's ``stats.Stat``).

    Attributes:
        timestamp: When the sample was taken; ``None`` is Go's zero time.
        metrics: Each metric's value, a Go ``uint64``.
    """

    timestamp: datetime | None = None
    metrics: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Call:
    """One invocation of a function: every field of Go's ``models.Call``, in Go's order.

    The defaults are Go's zero values. Integers must fit the Go type noted below, or
    :meth:`to_json` refuses them. Times must be timezone-aware; ``None`` is Go's zero time.

    Attributes:
        id: The call's unique id.
        status: ``"running"``, ``"success"``, ``"error"``, ``"timeout"`` and so on.
        image: The container image to run.
        delay: Seconds to wait before queueing the call (``int32``).
        type: ``"sync"``, ``"detached"`` or ``""``.
        payload: The input of an asynchronous call.
        url: The full URL of the request that made the call.
        method: The HTTP method of that request.
        timeout: The longest the call may run, in seconds (``int32``).
        idle_timeout: How long an idle hot container lives, in seconds (``int32``).
        tmpfs_size: The size of the container's ``/tmp``, in MB (``uint32``).
        memory: The memory the call may use, in MB (``uint64``).
        cpus: The CPU the call may use, in milli-CPUs, 0 (no limit) to :data:`MAX_MILLI_CPUS`.
            JSON writes it as ``"<n>m"`` and also accepts fractional CPUs such as ``"0.1"``.
        config: The environment given to the function.
        annotations: Each annotation's value as raw, compact JSON text, exactly as Go keeps
            it: ``'"v"'`` for the string ``v``, ``'{"a":1e3}'`` for an object. The text is
            not normalised beyond whitespace, so ``1e3`` stays ``1e3`` and escapes stay as
            written. Values must be valid JSON; :meth:`to_json` compacts them and escapes
            ``<``, ``>``, ``&``, U+2028 and U+2029 as Go does, so a value holding those reads
            back in its escaped form.
        headers: The headers of the request that made the call.
        syslog_url: Where to send the call's logs.
        completed_at: When the call ended.
        created_at: When the call was created.
        started_at: When the call started running.
        execution_duration: Time the user's code ran, in nanoseconds (``int64``).
        stats: Resource samples taken while the call ran.
        error: Why the call failed.
        app_id: The id of the call's app.
        app_name: The name of the call's app.
        trigger_id: The id of the trigger that made the call.
        fn_id: The id of the function.
    """

    id: str = ""
    status: str = ""
    image: str = ""
    delay: int = 0
    type: str = ""
    payload: str = ""
    url: str = ""
    method: str = ""
    timeout: int = 0
    idle_timeout: int = 0
    tmpfs_size: int = 0
    memory: int = 0
    cpus: int = 0
    config: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    headers: dict[str, list[str]] = field(default_factory=dict)
    syslog_url: str = ""
    completed_at: datetime | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    execution_duration: int = 0
    stats: list[Stat] = field(default_factory=list)
    error: str = ""
    app_id: str = ""
    app_name: str = ""
    trigger_id: str = ""
    fn_id: str = ""

    def to_json(self) -> str:
        """Encode the call exactly as Go's ``json.Marshal(&call)`` does in Fn.

        Returns:
            Compact JSON with Go's key order, omissions and escaping.

        Raises:
            ValueError: If a field holds what Go could not encode: an integer outside its
                Go type, ``cpus`` above :data:`MAX_MILLI_CPUS`, an annotation value that is
                not JSON, or a naive datetime. The message names the field.
        """
        members = []
        for name, codec in _FIELDS.items():
            encoded = codec.encode(self)
            if encoded is not None:
                members.append(f'"{name}":{encoded}')
        return "{" + ",".join(members) + "}"

    @classmethod
    def from_json(cls, text: str | bytes) -> Call:
        """Decode a call as Go's ``json.Unmarshal`` does in Fn.

        Missing keys keep their zero values and unknown keys are ignored. A time given as
        ``""`` becomes the Unix epoch (Go's ``ParseDateTime`` does that), and Go's zero time
        becomes ``None``. A ``null`` document gives a zero call, as in Go.

        Args:
            text: The JSON document; bytes are read as UTF-8.

        Returns:
            The decoded call.

        Raises:
            ValueError: If the document is not JSON or not an object, or a field has the
                wrong type, an integer out of its Go type's range, or a bad ``cpus`` or
                time string. The message names the field.
        """
        plain = decode_plain(text)
        if plain is not None:
            return cls(**plain)  # type: ignore[arg-type]
        return cls._from_json_exact(text)

    @classmethod
    def _from_json_exact(cls, text: str | bytes) -> Call:
        """Decode with Go's rules in full (the path for anything but plain JSON)."""
        call = cls()
        for member in parse_object(text, "models.Call") or ():
            name = fold_key(member.key)
            codec = _FIELDS.get(name)
            if codec is not None:
                codec.decode(call, name, member)
        return call


def _encode_error(path: str, reason: str) -> ValueError:
    return ValueError(f"cannot encode Call.{path}: {reason}")


def _decode_error(path: str, reason: str) -> ValueError:
    return ValueError(f"invalid Call JSON: {path}: {reason}")


def _type_error(path: str, value: object, go_type: str) -> ValueError:
    return _decode_error(path, f"cannot unmarshal {kind(value)} into Go {go_type}")


def _in_range(path: str, value: int, go: GoInt) -> int:
    if not go.low <= value <= go.high:
        raise _encode_error(path, f"{value} is out of range for Go's {go.name}")
    return value


def _int(path: str, value: int, go: GoInt) -> str | None:
    return str(_in_range(path, value, go)) if value else None


def _text(value: str) -> str | None:
    return quote(value) if value else None


def _cpus(value: int) -> str | None:
    if not 0 <= value <= MAX_MILLI_CPUS:
        raise _encode_error("cpus", f"{value} is not between 0 and {MAX_MILLI_CPUS}")
    return f'"{value}m"' if value else None


def _time(path: str, value: datetime | None) -> str:
    if value is None:
        return f'"{_ZERO_TIME_JSON}"'
    if value.utcoffset() is None:
        raise _encode_error(path, "naive datetime; Go times always have a zone")
    return f'"{format_time(value)}"'


def _annotation(key: str, raw: str) -> str:
    try:
        validate(raw)
    except ValueError as exc:
        raise _encode_error(f"annotations[{key!r}]", f"not valid JSON: {exc}") from exc
    return escape_html(compact(raw))


def _list(values: list[str]) -> str:
    return "[" + ",".join(map(quote, values)) + "]"


def _stat_json(path: str, stat: Stat) -> str:
    metrics = encode_map(
        stat.metrics, lambda key, value: str(_in_range(f"{path}.metrics[{key!r}]", value, UINT64))
    )
    timestamp = _time(f"{path}.timestamp", stat.timestamp)
    return f'{{"timestamp":{timestamp},"metrics":{metrics or "{}"}}}'


def _stats(stats: list[Stat]) -> str | None:
    items = [_stat_json(f"stats[{i}]", stat) for i, stat in enumerate(stats)]
    return f"[{','.join(items)}]" if items else None


def _string(path: str, value: object) -> str:
    if not isinstance(value, str):
        raise _type_error(path, value, "string")
    return clean(value)


def _go_int(path: str, value: object, go: GoInt) -> int:
    if not isinstance(value, Number):
        raise _type_error(path, value, go.name)
    number = parse_int(value.text, go)
    if number is None:
        raise _decode_error(path, f"cannot unmarshal number {value.text} into Go {go.name}")
    return number


def _go_time(path: str, value: object) -> datetime | None:
    if not isinstance(value, str):
        raise _type_error(path, value, "common.DateTime")
    if not value:
        return _EPOCH
    try:
        parsed = parse_time(value)
    except ValueError as exc:
        raise _decode_error(path, str(exc)) from exc
    return None if parsed == _ZERO_TIME and not parsed.utcoffset() else parsed


def _go_cpus(raw: str) -> int:
    # MilliCPUs.UnmarshalJSON works on the raw JSON text, so escapes are not decoded.
    text = raw.strip()
    if text == "null":
        return 0
    if text.startswith('"'):
        text = text[1:-1].strip()
        if not text:
            return 0
        if text.endswith("m"):
            digits = text[:-1]
            # ParseUint takes leading zeros; the length check keeps int() off huge inputs.
            short = len(digits.lstrip("0")) <= 7
            if digits.isascii() and digits.isdigit() and short and int(digits) <= MAX_MILLI_CPUS:
                return int(digits)
        else:
            # Go's ParseFloat also reads "NaN", which slips through its range check as an
            # undefined number; parse_float refuses it, like the infinities.
            cpus = parse_float(text)
            if cpus is not None and 0 <= cpus <= MAX_MILLI_CPUS // 1000:
                return int(cpus * 1000)
    raise _decode_error("cpus", f'invalid CPUs {raw}: want a string such as "100m" or "0.1"')


_Decoder = Callable[[Call, str, Member], None]


def _unless_null(read: Callable[[str, object], object]) -> _Decoder:
    def decode(call: Call, name: str, member: Member) -> None:
        if member.value is not None:  # Go leaves a scalar field as it was on null
            setattr(call, name, read(name, member.value))

    return decode


def _int_setter(go: GoInt) -> _Decoder:
    return _unless_null(lambda path, value: _go_int(path, value, go))


_set_text = _unless_null(_string)
_set_time = _unless_null(_go_time)


def _set_cpus(call: Call, name: str, member: Member) -> None:
    call.cpus = _go_cpus(member.raw)


def _object(path: str, value: object, go_type: str) -> Object:
    if not isinstance(value, Object):
        raise _type_error(path, value, go_type)
    return value


def _set_config(call: Call, name: str, member: Member) -> None:
    if member.value is None:
        call.config = {}
        return
    for key, value in _object(name, member.value, "models.Config"):
        path = f"config[{key!r}]"
        call.config[clean(key)] = "" if value is None else _string(path, value)


def _set_annotations(call: Call, name: str, member: Member) -> None:
    if member.value is None:
        call.annotations = {}
        return
    _object(name, member.value, "models.Annotations")
    for annotation in parse_object(member.raw, "models.Annotations") or ():
        call.annotations[clean(annotation.key)] = clean(compact(annotation.raw))


def _set_headers(call: Call, name: str, member: Member) -> None:
    if member.value is None:
        call.headers = {}
        return
    for key, values in _object(name, member.value, "http.Header"):
        path = f"headers[{key!r}]"
        if values is None:
            values = []
        elif not isinstance(values, list):
            raise _type_error(path, values, "[]string")
        call.headers[clean(key)] = [
            "" if v is None else _string(f"{path}[{i}]", v) for i, v in enumerate(values)
        ]


def _stat(path: str, value: object) -> Stat:
    if value is None:
        return Stat()
    timestamp = None
    metrics: dict[str, int] = {}
    for key, item in _object(path, value, "stats.Stat"):
        name = fold_key(key)
        if name == "timestamp" and item is not None:
            timestamp = _go_time(f"{path}.timestamp", item)
        elif name == "metrics" and item is None:
            metrics = {}
        elif name == "metrics":
            for metric, number in _object(f"{path}.metrics", item, "map[string]uint64"):
                where = f"{path}.metrics[{metric!r}]"
                metrics[clean(metric)] = 0 if number is None else _go_int(where, number, UINT64)
    return Stat(timestamp, metrics)


def _set_stats(call: Call, name: str, member: Member) -> None:
    values = [] if member.value is None else member.value
    if not isinstance(values, list):
        raise _type_error(name, values, "stats.Stats")
    call.stats = [_stat(f"stats[{i}]", v) for i, v in enumerate(values)]


class _Codec(NamedTuple):
    encode: Callable[[Call], str | None]
    decode: _Decoder


# Go's declaration order, which is also the dataclass's; JSON names equal attribute names.
_FIELDS: dict[str, _Codec] = {
    "id": _Codec(lambda c: quote(c.id), _set_text),
    "status": _Codec(lambda c: quote(c.status), _set_text),
    "image": _Codec(lambda c: _text(c.image), _set_text),
    "delay": _Codec(lambda c: _int("delay", c.delay, INT32), _int_setter(INT32)),
    "type": _Codec(lambda c: _text(c.type), _set_text),
    "payload": _Codec(lambda c: _text(c.payload), _set_text),
    "url": _Codec(lambda c: _text(c.url), _set_text),
    "method": _Codec(lambda c: _text(c.method), _set_text),
    "timeout": _Codec(lambda c: _int("timeout", c.timeout, INT32), _int_setter(INT32)),
    "idle_timeout": _Codec(
        lambda c: _int("idle_timeout", c.idle_timeout, INT32), _int_setter(INT32)
    ),
    "tmpfs_size": _Codec(lambda c: _int("tmpfs_size", c.tmpfs_size, UINT32), _int_setter(UINT32)),
    "memory": _Codec(lambda c: _int("memory", c.memory, UINT64), _int_setter(UINT64)),
    "cpus": _Codec(lambda c: _cpus(c.cpus), _set_cpus),
    "config": _Codec(lambda c: encode_map(c.config, lambda _, v: quote(v)), _set_config),
    "annotations": _Codec(lambda c: encode_map(c.annotations, _annotation), _set_annotations),
    "headers": _Codec(lambda c: encode_map(c.headers, lambda _, v: _list(v)), _set_headers),
    "syslog_url": _Codec(lambda c: _text(c.syslog_url), _set_text),
    "completed_at": _Codec(lambda c: _time("completed_at", c.completed_at), _set_time),
    "created_at": _Codec(lambda c: _time("created_at", c.created_at), _set_time),
    "started_at": _Codec(lambda c: _time("started_at", c.started_at), _set_time),
    "execution_duration": _Codec(
        lambda c: _int("execution_duration", c.execution_duration, INT64), _int_setter(INT64)
    ),
    "stats": _Codec(lambda c: _stats(c.stats), _set_stats),
    "error": _Codec(lambda c: _text(c.error), _set_text),
    "app_id": _Codec(lambda c: quote(c.app_id), _set_text),
    "app_name": _Codec(lambda c: quote(c.app_name), _set_text),
    "trigger_id": _Codec(lambda c: quote(c.trigger_id), _set_text),
    "fn_id": _Codec(lambda c: quote(c.fn_id), _set_text),
}
