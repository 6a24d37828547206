r"""Fn's call model, the port of Go's ``models.Call``, and its JSON.

Fn's load balancer sends a call to a runner as ``json.Marshal(call)`` in the gRPC field
``TryCall.models_call_json``, and the runner reads it with ``json.Unmarshal``. The codec is
orjson plus a check per field: :meth:`Call.from_json` reads every document Go writes for a
call (escapes such as ``\u0026`` included), and :meth:`Call.to_json` writes JSON with Fn's
field names and types, which Go reads. The bytes need not be Go's: keys are written in Go's
order with Go's ``omitempty`` rules, but ``&``, ``<`` and ``>`` are not escaped.

The few conversions Fn's model needs are here: times are Go's ``common.DateTime`` text
(``""`` reads as the Unix epoch, Go's zero time as ``None``), ``cpus`` is ``"<n>m"``, and an
annotation value is kept as compact JSON text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson

from ._times import format_time, parse_time

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MEMORY",
    "DEFAULT_TIMEOUT",
    "MAX_MILLI_CPUS",
    "Call",
    "Stat",
]

MAX_MILLI_CPUS = 1_024_000
"""The most milli-CPUs a call may ask for: 1024 CPUs (Go's ``models.MaxMilliCPUs``)."""

# Fn's function defaults (api/models/fn.go), for a function (or a call) that names none:
# the registry fills them in, and a runner falls back on them for a call that lacks them.
DEFAULT_MEMORY = 128  #: MB, Fn's ``DefaultMemory``.
DEFAULT_TIMEOUT = 30  #: Seconds, Fn's ``DefaultTimeout``.
DEFAULT_IDLE_TIMEOUT = 30  #: Seconds, Fn's ``DefaultIdleTimeout``.

_ZERO_TIME_JSON = "0001-01-01T00:00:00.000Z"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT32 = ("int32", -(2**31), 2**31 - 1)
_UINT32 = ("uint32", 0, 2**32 - 1)
_INT64 = ("int64", -(2**63), 2**63 - 1)
_UINT64 = ("uint64", 0, 2**64 - 1)
_MILLI_CPUS = re.compile(r"(\d{1,7})m", re.ASCII)


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
    r"""One invocation of a function: every field of Go's ``models.Call``, in Go's order.

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
        annotations: Each annotation's value as JSON text, such as ``'"v"'`` for the string
            ``v``. :meth:`from_json` writes it compact, in UTF-8, with only the escapes JSON
            needs (so Go's ``"\u0026"`` reads as ``"&"``); integers beyond 64 bits read as
            floats. :meth:`to_json` writes the text as it is, once checked to be JSON.
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
        r"""Encode the call as JSON that Go's ``json.Unmarshal`` reads into ``models.Call``.

        Keys follow Go's order, and fields Go tags ``omitempty`` are left out at their zero
        value.

        Returns:
            Compact JSON.

        Raises:
            ValueError: If a field holds what Go could not read: an integer outside its Go
                type, ``cpus`` outside 0 to :data:`MAX_MILLI_CPUS`, an annotation value that
                is not JSON, or a naive datetime (the message names the field); or text that
                is not Unicode (a lone surrogate).
        """
        doc: dict[str, object] = {"id": self.id, "status": self.status}
        _put(doc, "image", self.image)
        _put(doc, "delay", _in_range("delay", self.delay, _INT32))
        _put(doc, "type", self.type)
        _put(doc, "payload", self.payload)
        _put(doc, "url", self.url)
        _put(doc, "method", self.method)
        _put(doc, "timeout", _in_range("timeout", self.timeout, _INT32))
        _put(doc, "idle_timeout", _in_range("idle_timeout", self.idle_timeout, _INT32))
        _put(doc, "tmpfs_size", _in_range("tmpfs_size", self.tmpfs_size, _UINT32))
        _put(doc, "memory", _in_range("memory", self.memory, _UINT64))
        if not 0 <= self.cpus <= MAX_MILLI_CPUS:
            raise _encode_error("cpus", f"{self.cpus} is not between 0 and {MAX_MILLI_CPUS}")
        _put(doc, "cpus", f"{self.cpus}m" if self.cpus else "")
        _put(doc, "config", self.config)
        _put(doc, "annotations", {k: _raw(k, v) for k, v in self.annotations.items()})
        _put(doc, "headers", self.headers)
        _put(doc, "syslog_url", self.syslog_url)
        doc["completed_at"] = _time("completed_at", self.completed_at)
        doc["created_at"] = _time("created_at", self.created_at)
        doc["started_at"] = _time("started_at", self.started_at)
        duration = _in_range("execution_duration", self.execution_duration, _INT64)
        _put(doc, "execution_duration", duration)
        _put(doc, "stats", [_stat_doc(f"stats[{i}]", s) for i, s in enumerate(self.stats)])
        _put(doc, "error", self.error)
        doc["app_id"] = self.app_id
        doc["app_name"] = self.app_name
        doc["trigger_id"] = self.trigger_id
        doc["fn_id"] = self.fn_id
        try:
            return orjson.dumps(doc).decode()
        except orjson.JSONEncodeError as exc:
            raise ValueError(f"cannot encode Call: {exc}") from None

    @classmethod
    def from_json(cls, text: str | bytes) -> Call:
        """Decode a call from the JSON Go's ``json.Marshal`` writes for ``models.Call``.

        Missing keys, keys given as ``null`` and unknown keys leave their field at its zero
        value. A time given as ``""`` becomes the Unix epoch (as Go's ``ParseDateTime``
        has it), and Go's zero time becomes ``None``.

        Args:
            text: The JSON document; bytes are read as UTF-8.

        Returns:
            The decoded call.

        Raises:
            ValueError: If the document is not a JSON object (or not UTF-8, or holds a lone
                surrogate escape, a number beyond a double or nesting past 1024), or if a field
                has the wrong type, an integer out of its Go type's range, or a bad ``cpus``
                or time string. The message names the field.
        """
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"invalid Call JSON: {exc}") from None
        if type(document) is not dict:
            raise ValueError(f"invalid Call JSON: want an object, got {_kind(document)}")
        fields: dict[str, object] = {}
        for key, value in document.items():
            read = _READERS.get(key)
            if read is not None and value is not None:
                fields[key] = read(key, value)
        return cls(**fields)  # type: ignore[arg-type]


def _encode_error(path: str, reason: str) -> ValueError:
    return ValueError(f"cannot encode Call.{path}: {reason}")


def _decode_error(path: str, reason: str) -> ValueError:
    return ValueError(f"invalid Call JSON: {path}: {reason}")


def _put(doc: dict[str, object], name: str, value: object) -> None:
    if value:  # Go's omitempty: zero numbers, empty strings, maps and lists are left out
        doc[name] = value


def _in_range(path: str, value: int, go: tuple[str, int, int]) -> int:
    name, low, high = go
    if not low <= value <= high:
        raise _encode_error(path, f"{value} is out of range for Go's {name}")
    return value


def _time(path: str, value: datetime | None) -> str:
    if value is None:
        return _ZERO_TIME_JSON
    try:
        return format_time(value)
    except ValueError as exc:
        raise _encode_error(path, str(exc)) from None


def _raw(key: str, raw: str) -> orjson.Fragment:
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _encode_error(f"annotations[{key!r}]", f"not valid JSON: {exc}") from None
    return orjson.Fragment(raw)


def _stat_doc(path: str, stat: Stat) -> dict[str, object]:
    for metric, value in stat.metrics.items():
        _in_range(f"{path}.metrics[{metric!r}]", value, _UINT64)
    return {"timestamp": _time(f"{path}.timestamp", stat.timestamp), "metrics": stat.metrics}


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "number", float: "number", str: "string", list: "array"}.get(
        type(value), "object"
    )


def _want(path: str, value: object, what: str) -> ValueError:
    return _decode_error(path, f"want {what}, got {_kind(value)}")


def _read_text(path: str, value: object) -> str:
    if type(value) is not str:
        raise _want(path, value, "a string")
    return value


def _integer(go: tuple[str, int, int]) -> Callable[[str, object], int]:
    name, low, high = go

    def read(path: str, value: object) -> int:
        if type(value) is not int:
            raise _want(path, value, f"an integer ({name})")
        if not low <= value <= high:
            raise _decode_error(path, f"{value} is out of range for Go's {name}")
        return value

    return read


def _read_time(path: str, value: object) -> datetime | None:
    text = _read_text(path, value)
    if not text:
        return _EPOCH
    if text == _ZERO_TIME_JSON:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise _decode_error(path, str(exc)) from None


def _read_cpus(path: str, value: object) -> int:
    text = _read_text(path, value).strip()
    if not text:
        return 0
    match = _MILLI_CPUS.fullmatch(text)
    if match is not None and int(match[1]) <= MAX_MILLI_CPUS:
        return int(match[1])
    # Fn also reads fractional CPUs, such as "0.1" for 100m.
    try:
        cpus = float(text) if match is None and text.isascii() else math.nan
    except ValueError:
        cpus = math.nan
    if 0 <= cpus <= MAX_MILLI_CPUS // 1000:
        return int(cpus * 1000)
    raise _decode_error(path, f'invalid CPUs {text!r}: want a string such as "100m" or "0.1"')


def _read_object(path: str, value: object) -> dict[str, object]:
    if type(value) is not dict:
        raise _want(path, value, "an object")
    return value


def _read_config(path: str, value: object) -> dict[str, str]:
    config = _read_object(path, value)
    for key, item in config.items():
        if type(item) is not str:
            raise _want(f"{path}[{key!r}]", item, "a string")
    return config  # type: ignore[return-value]  # checked just above


def _read_annotations(path: str, value: object) -> dict[str, str]:
    return {key: orjson.dumps(item).decode() for key, item in _read_object(path, value).items()}


def _read_headers(path: str, value: object) -> dict[str, list[str]]:
    headers = _read_object(path, value)
    for key, values in headers.items():
        if values is None:  # Go writes a nil value slice as null
            headers[key] = []
        elif type(values) is not list:
            raise _want(f"{path}[{key!r}]", values, "an array of strings")
        else:
            for i, item in enumerate(values):
                if type(item) is not str:
                    raise _want(f"{path}[{key!r}][{i}]", item, "a string")
    return headers  # type: ignore[return-value]  # checked just above


_read_uint64 = _integer(_UINT64)


def _read_stat(path: str, value: object) -> Stat:
    if value is None:
        return Stat()
    stat = _read_object(path, value)
    timestamp = stat.get("timestamp")
    metrics = stat.get("metrics")
    return Stat(
        None if timestamp is None else _read_time(f"{path}.timestamp", timestamp),
        {}
        if metrics is None  # Go writes a nil metrics map as null
        else {
            k: _read_uint64(f"{path}.metrics[{k!r}]", v)
            for k, v in _read_object(f"{path}.metrics", metrics).items()
        },
    )


def _read_stats(path: str, value: object) -> list[Stat]:
    if type(value) is not list:
        raise _want(path, value, "an array")
    return [_read_stat(f"{path}[{i}]", item) for i, item in enumerate(value)]


_READERS: dict[str, Callable[[str, object], object]] = {
    **dict.fromkeys(
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
        ),
        _read_text,
    ),
    "delay": _integer(_INT32),
    "timeout": _integer(_INT32),
    "idle_timeout": _integer(_INT32),
    "tmpfs_size": _integer(_UINT32),
    "memory": _read_uint64,
    "execution_duration": _integer(_INT64),
    "cpus": _read_cpus,
    "config": _read_config,
    "annotations": _read_annotations,
    "headers": _read_headers,
    "completed_at": _read_time,
    "created_at": _read_time,
    "started_at": _read_time,
    "stats": _read_stats,
}
