"""Tests for the call model and its JSON codec (``runnerpool._model``)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runnerpool._model import MAX_MILLI_CPUS, Call, Stat

# Documents as Go's json.Marshal writes models.Call (Go 1.13, HTML-safe escapes, sorted maps).
# The spec's TryCall JSON (section 6.3), verified on Fn.
SPEC_EXAMPLE = (
    '{"id":"01CALLID0000000000000000","status":"running","image":"img:1","type":"sync",'
    '"url":"http://lb/invoke/fn1","method":"POST","timeout":30,"idle_timeout":30,"memory":128,'
    '"config":{"FN_APP_ID":"app1","FN_FN_ID":"fn1","FN_MEMORY":"128","FN_TYPE":"sync"},'
    '"headers":{"Content-Type":["text/plain"]},"completed_at":"0001-01-01T00:00:00.000Z",'
    '"created_at":"2026-11-27T20:04:45.158Z","started_at":"2026-11-27T20:04:45.158Z",'
    '"app_id":"app1","app_name":"myapp","trigger_id":"","fn_id":"fn1"}'
)
# The trigger call of fn-api-and-triggers.md section 3 (a query string, annotations), with
# cpus and HTML characters added, in Go's bytes.
GO_TRIGGER_CALL = (
    '{"id":"01M8V7WC86R00040JY28000001","status":"running","image":"httpinfo:0.0.1",'
    '"type":"sync","url":"http://127.0.0.1:24082/t/myapp/hello?a=1\\u0026a=2","method":"POST",'
    '"timeout":20,"idle_timeout":40,"memory":256,"cpus":"100m","config":{"APP_CFG":"a1",'
    '"FN_APP_ID":"01M8V7QVBPR00040JY20000001","FN_CFG":"f1","FN_FN_ID":"01M8V7R8KNR00040JY20000003",'
    '"FN_MEMORY":"256","FN_TYPE":"sync","SHARED":"from-fn"},"annotations":{"example.com/fnonly":'
    '{"n":1},"example.com/html":"\\u003cb\\u003e\\u0026amp;\\u003c/b\\u003e","example.com/shared":'
    '"fn","example.com/team":"blue","fnproject.io/fn/invokeEndpoint":'
    '"http://127.0.0.1:24080/invoke/01M8V7R8KNR00040JY20000003"},"headers":{"Content-Type":'
    '["text/plain"],"Fn-Http-H-Accept":["\\u003cx\\u003e"],"Fn-Http-H-X-Dup":["d1","d2"],'
    '"Fn-Http-Request-Url":["http://127.0.0.1:24082/t/myapp/hello?a=1\\u0026a=2"]},'
    '"syslog_url":"tcp://127.0.0.1:24999","completed_at":"0001-01-01T00:00:00.000Z",'
    '"created_at":"2026-12-02T11:22:49.478Z","started_at":"2026-12-02T11:22:49.478Z",'
    '"app_id":"01M8V7QVBPR00040JY20000001","app_name":"myapp",'
    '"trigger_id":"01M8V7RGCTR00040JY20000008","fn_id":"01M8V7R8KNR00040JY20000003"}'
)
# A finished call: control and line-separator escapes, stats with an offset and a uint64
# metric, a nil header slice and a nil metrics map (Go writes both as null).
GO_FINISHED_CALL = (
    '{"id":"c2","status":"success","delay":-1,"payload":"a\\u2028b\\u0001\\"\\\\é😀",'
    '"tmpfs_size":4294967295,"cpus":"1024000m","headers":{"X":null},'
    '"completed_at":"2026-12-02T11:22:49.478Z","created_at":"0001-01-01T00:00:00.000Z",'
    '"started_at":"0001-01-01T00:00:00.000Z","execution_duration":1500000000,"stats":'
    '[{"timestamp":"2026-12-02T12:00:00.005+05:30","metrics":{"cpu_user":18446744073709551615}},'
    '{"timestamp":"0001-01-01T00:00:00.000Z","metrics":null}],'
    '"error":"boom \\u003cfn\\u003e","app_id":"","app_name":"","trigger_id":"","fn_id":""}'
)
ZERO = "0001-01-01T00:00:00.000Z"
# The JSON tags of Go's models.Call, in declaration order (api/models/call.go).
GO_FIELD_ORDER = [
    "id", "status", "image", "delay", "type", "payload", "url", "method", "timeout",
    "idle_timeout", "tmpfs_size", "memory", "cpus", "config", "annotations", "headers",
    "syslog_url", "completed_at", "created_at", "started_at", "execution_duration", "stats",
    "error", "app_id", "app_name", "trigger_id", "fn_id",
]  # fmt: skip
ALWAYS_PRESENT = ["id", "status", "completed_at", "created_at", "started_at"]
ALWAYS_PRESENT += ["app_id", "app_name", "trigger_id", "fn_id"]
T0 = datetime(2026, 11, 27, 20, 4, 45, 158000, tzinfo=UTC)
T1 = datetime(2026, 12, 2, 11, 22, 49, 478000, tzinfo=UTC)
IST = timezone(timedelta(hours=5, minutes=30))


def keys(document: str) -> list[str]:
    """Return the top-level keys of a JSON object, in order."""
    pairs: list[tuple[str, Any]] = json.loads(document, object_pairs_hook=list)
    return [key for key, _ in pairs]


def full_call() -> Call:
    """Return a call with every field set to something other than its zero value."""
    return Call(
        id="i", status="s", image="img", delay=1, type="sync", payload="p", url="u",
        method="POST", timeout=2, idle_timeout=3, tmpfs_size=4, memory=5, cpus=6,
        config={"k": "v"}, annotations={"a": "1"}, headers={"h": ["v"]}, syslog_url="tcp://x",
        completed_at=T0, created_at=T0, started_at=T0, execution_duration=7,
        stats=[Stat(T0, {"m": 1})], error="e", app_id="a", app_name="n", trigger_id="t",
        fn_id="f",
    )  # fmt: skip


class TestGoWrittenDocuments:
    def test_spec_example(self) -> None:
        """The spec's TryCall JSON reads with its values, and writes back to the same JSON."""
        call = Call.from_json(SPEC_EXAMPLE)
        assert call.created_at == call.started_at == T0
        assert call.completed_at is None
        assert call.headers == {"Content-Type": ["text/plain"]}
        assert (call.timeout, call.idle_timeout, call.memory) == (30, 30, 128)
        assert json.loads(call.to_json()) == json.loads(SPEC_EXAMPLE)

    def test_trigger_call_with_escapes_annotations_and_cpus(self) -> None:
        r"""Go's \u0026 and \u003c escapes, raw annotation values and "100m" read correctly."""
        call = Call.from_json(GO_TRIGGER_CALL)
        url = "http://127.0.0.1:24082/t/myapp/hello?a=1&a=2"
        assert call.url == url
        assert call.headers["Fn-Http-Request-Url"] == [url]
        assert call.headers["Fn-Http-H-Accept"] == ["<x>"]
        assert call.cpus == 100
        assert call.annotations == {
            "example.com/fnonly": '{"n":1}',
            "example.com/html": '"<b>&amp;</b>"',
            "example.com/shared": '"fn"',
            "example.com/team": '"blue"',
            "fnproject.io/fn/invokeEndpoint": (
                '"http://127.0.0.1:24080/invoke/01M8V7R8KNR00040JY20000003"'
            ),
        }
        assert call.config["FN_MEMORY"] == "256"
        assert (call.created_at, call.completed_at) == (T1, None)
        assert call.trigger_id == "01M8V7RGCTR00040JY20000008"

    def test_finished_call_with_stats_and_nulls(self) -> None:
        """Control escapes, U+2028, stats, uint64 metrics and Go's null slices and maps read."""
        call = Call.from_json(GO_FINISHED_CALL.encode())
        assert call.payload == 'a\u2028b\x01"\\é😀'
        assert call.error == "boom <fn>"
        assert (call.delay, call.tmpfs_size, call.cpus) == (-1, 2**32 - 1, MAX_MILLI_CPUS)
        assert call.headers == {"X": []}
        assert call.execution_duration == 1_500_000_000
        when = datetime(2026, 12, 2, 12, 0, 0, 5000, tzinfo=IST)
        assert call.stats == [Stat(when, {"cpu_user": 2**64 - 1}), Stat()]
        assert call.stats[0].timestamp is not None
        assert call.stats[0].timestamp.utcoffset() == timedelta(hours=5, minutes=30)

    @pytest.mark.parametrize("document", [SPEC_EXAMPLE, GO_TRIGGER_CALL, GO_FINISHED_CALL])
    def test_rewritten_documents_keep_their_values(self, document: str) -> None:
        """What we write for a Go-written call holds the same JSON values Go wrote."""
        call = Call.from_json(document)
        ours = json.loads(call.to_json())
        go = json.loads(document)
        go["headers"] = {k: v or [] for k, v in go.get("headers", {}).items()}
        for stat in go.get("stats", []):
            stat["metrics"] = stat["metrics"] or {}
        assert ours == go
        assert Call.from_json(call.to_json()) == call


class TestEncoding:
    def test_fields_follow_go_declaration_order(self) -> None:
        """Dataclass fields and JSON keys both follow Go's declaration order."""
        assert [f.name for f in dataclasses.fields(Call)] == GO_FIELD_ORDER
        assert keys(full_call().to_json()) == GO_FIELD_ORDER

    def test_full_call_round_trips(self) -> None:
        """A call with every field set decodes back to itself."""
        assert Call.from_json(full_call().to_json()) == full_call()

    def test_zero_call(self) -> None:
        """A zero call writes the always-present keys, with Go's zero time, and reads back."""
        assert keys(Call().to_json()) == ALWAYS_PRESENT
        assert json.loads(Call().to_json())["created_at"] == ZERO
        assert Call.from_json(Call().to_json()) == Call()

    def test_omitempty_fields_left_out_when_zero(self) -> None:
        """Setting one field does not bring in other omitempty fields."""
        assert keys(Call(memory=128).to_json()) == [
            "id", "status", "memory", "completed_at", "created_at", "started_at",
            "app_id", "app_name", "trigger_id", "fn_id",
        ]  # fmt: skip

    def test_types_go_reads(self) -> None:
        """The cpus field is "<n>m"; times carry ms and a zone; annotations are JSON values."""
        call = Call(cpus=100, annotations={"a": ' { "x" : [1, 2] } '}, started_at=T0)
        call.created_at = datetime(
            2020, 1, 2, 3, 4, 5, 999999, tzinfo=timezone(-timedelta(hours=8))
        )
        document = json.loads(call.to_json())
        assert document["cpus"] == "100m"
        assert document["annotations"] == {"a": {"x": [1, 2]}}
        assert document["started_at"] == "2026-11-27T20:04:45.158Z"
        assert document["created_at"] == "2020-01-02T03:04:05.999-08:00"

    def test_text_is_utf8_and_lone_surrogates_refused(self) -> None:
        """Text is written as UTF-8 with JSON's escapes only; a lone surrogate is refused."""
        text = Call(id='é😀\u2028"\x01', config={"k": "<&>"}).to_json()
        assert '"id":"é😀\u2028\\"\\u0001"' in text
        assert '"config":{"k":"<&>"}' in text
        with pytest.raises(ValueError, match="cannot encode Call"):
            Call(id="\ud800").to_json()

    @pytest.mark.parametrize(
        ("call", "field"),
        [
            (Call(timeout=2**31), "timeout"), (Call(delay=-(2**31) - 1), "delay"),
            (Call(tmpfs_size=-1), "tmpfs_size"), (Call(memory=2**64), "memory"),
            (Call(execution_duration=-(2**63) - 1), "execution_duration"),
            (Call(cpus=MAX_MILLI_CPUS + 1), "cpus"), (Call(cpus=-1), "cpus"),
            (Call(annotations={"bad": "{"}), r"annotations\['bad'\]"),
            (Call(annotations={"bad": "NaN"}), r"annotations\['bad'\]"),
            (Call(started_at=datetime(2020, 1, 2)), "started_at"),
            (Call(stats=[Stat(None, {"m": -1})]), r"stats\[0\]\.metrics\['m'\]"),
            (Call(stats=[Stat(datetime(2020, 1, 1), {})]), r"stats\[0\]\.timestamp"),
        ],
    )  # fmt: skip
    def test_unencodable_values_name_the_field(self, call: Call, field: str) -> None:
        """to_json refuses values Go could not read, naming the field."""
        with pytest.raises(ValueError, match=field):
            call.to_json()


class TestDecoding:
    @pytest.mark.parametrize(
        ("text", "cpus"),
        [
            ('"100m"', 100), ('"0100m"', 100), ('"0m"', 0), ('"1024000m"', MAX_MILLI_CPUS),
            ('"0.1"', 100), ('"1.5"', 1500), ('"1"', 1000), ('"1024"', MAX_MILLI_CPUS),
            ('" 100m "', 100), ('""', 0), ("null", 0),
        ],
    )  # fmt: skip
    def test_cpus(self, text: str, cpus: int) -> None:
        """Milli-CPUs, fractional CPUs, empty strings and null read as Fn reads them."""
        assert Call.from_json(f'{{"cpus":{text}}}').cpus == cpus

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2020-01-02T03:04:05Z", datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)),
            ("2020-01-02T03:04:05.1Z", datetime(2020, 1, 2, 3, 4, 5, 100000, tzinfo=UTC)),
            ("2020-01-02T03:04:05.123456789Z", datetime(2020, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)),
            ("2020-01-02T05:34:05+02:30", datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)),
            ("0005-01-02T00:00:00.000Z", datetime(5, 1, 2, tzinfo=UTC)),
            ("", datetime(1970, 1, 1, tzinfo=UTC)),
        ],
    )  # fmt: skip
    def test_times(self, text: str, expected: datetime) -> None:
        """RFC 3339 times read with their zone; "" is the Unix epoch, as in Fn."""
        assert Call.from_json(f'{{"created_at":"{text}"}}').created_at == expected

    def test_missing_null_and_unknown_keys(self) -> None:
        """Missing keys, null values and unknown keys leave fields at their zero values."""
        document = '{"nope":[1,{"x":null}],"id":"a","timeout":null,"config":null,"stats":[null]}'
        assert Call.from_json(document) == Call(id="a", stats=[Stat()])

    def test_annotations_are_compact_unescaped_json(self) -> None:
        """Annotation values read as the compact JSON the load balancer builds itself."""
        call = Call.from_json('{"annotations":{"a":{ "b" : [ 1 , "\\u0026é" ] },"n":null}}')
        assert call.annotations == {"a": '{"b":[1,"&é"]}', "n": "null"}

    @pytest.mark.parametrize(
        ("document", "field"),
        [
            ('{"timeout":2147483648}', "timeout"), ('{"delay":-2147483649}', "delay"),
            ('{"idle_timeout":1.0}', "idle_timeout"), ('{"tmpfs_size":-1}', "tmpfs_size"),
            ('{"memory":18446744073709551616}', "memory"), ('{"timeout":"30"}', "timeout"),
            ('{"timeout":true}', "timeout"), ('{"id":5}', "id"), ('{"fn_id":true}', "fn_id"),
            ('{"config":[]}', "config"), ('{"config":{"a":1}}', "config"),
            ('{"headers":{"a":"b"}}', "headers"), ('{"headers":{"a":[1]}}', "headers"),
            ('{"annotations":[]}', "annotations"), ('{"stats":{}}', "stats"),
            ('{"stats":[1]}', "stats"), ('{"stats":[{"metrics":{"m":-1}}]}', "stats"),
            ('{"stats":[{"timestamp":"x"}]}', "stats"), ('{"created_at":5}', "created_at"),
            ('{"created_at":"2020-01-02T03:04:05"}', "created_at"),
            ('{"created_at":"2020-02-30T03:04:05Z"}', "created_at"),
            ('{"cpus":"x"}', "cpus"), ('{"cpus":"1024001m"}', "cpus"), ('{"cpus":"-0.1"}', "cpus"),
            ('{"cpus":"NaN"}', "cpus"), ('{"cpus":100}', "cpus"),
        ],
    )  # fmt: skip
    def test_field_errors_name_the_field(self, document: str, field: str) -> None:
        """A value of the wrong type or range raises ValueError naming its field."""
        with pytest.raises(ValueError, match=field):
            Call.from_json(document)

    @pytest.mark.parametrize(
        "document",
        [
            "", "{", "{}x", '{"a":1,}', "{'a':1}", '{"a":NaN}', '{"a":1e400}', '{"a":"\x01"}',
            b'{"a":1}\xff', "[]", "null", "1", '{"id":"\\ud800"}',
            '{"annotations":{"a":' + "[" * 100_000 + "]" * 100_000 + "}}",
        ],
    )  # fmt: skip
    def test_malformed_documents_rejected(self, document: str | bytes) -> None:
        """Text that is not a JSON object, or holds a lone surrogate, raises ValueError."""
        with pytest.raises(ValueError, match="invalid Call JSON"):
            Call.from_json(document)


def _truncate_to_ms(t: datetime) -> datetime:
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


_ZONES = st.sampled_from([UTC, IST, timezone(timedelta(hours=-11, minutes=-59))])
_TIMES = st.none() | st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=_ZONES
).map(_truncate_to_ms)
_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)


def _json_values() -> st.SearchStrategy[object]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)  # orjson writes 64-bit integers
        | st.floats(allow_nan=False, allow_infinity=False)
        | _TEXT
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
        max_leaves=8,
    )


def _calls() -> st.SearchStrategy[Call]:
    # The decoder writes annotation values in orjson's compact form; start from that.
    raw_json = _json_values().map(lambda v: orjson.dumps(v).decode())
    uint64 = st.integers(0, 2**64 - 1)
    int32 = st.integers(-(2**31), 2**31 - 1)
    return st.builds(
        Call,
        id=_TEXT, status=_TEXT, image=_TEXT, delay=int32, type=_TEXT, payload=_TEXT, url=_TEXT,
        method=_TEXT, timeout=int32, idle_timeout=int32, tmpfs_size=st.integers(0, 2**32 - 1),
        memory=uint64, cpus=st.integers(0, MAX_MILLI_CPUS),
        config=st.dictionaries(_TEXT, _TEXT, max_size=3),
        annotations=st.dictionaries(_TEXT, raw_json, max_size=3),
        headers=st.dictionaries(_TEXT, st.lists(_TEXT, max_size=3), max_size=3),
        syslog_url=_TEXT, completed_at=_TIMES, created_at=_TIMES, started_at=_TIMES,
        execution_duration=st.integers(-(2**63), 2**63 - 1),
        stats=st.lists(
            st.builds(Stat, _TIMES, st.dictionaries(_TEXT, uint64, max_size=3)), max_size=2
        ),
        error=_TEXT, app_id=_TEXT, app_name=_TEXT, trigger_id=_TEXT, fn_id=_TEXT,
    )  # fmt: skip


def _parse_time(text: str) -> datetime | None:
    return None if text == ZERO else datetime.fromisoformat(text)


class TestProperties:
    @settings(max_examples=300, deadline=None)
    @given(_calls())
    def test_round_trip(self, call: Call) -> None:
        """Any call with millisecond times decodes from its own JSON to an equal call."""
        assert Call.from_json(call.to_json()) == call

    @settings(max_examples=300, deadline=None)
    @given(_calls())
    def test_output_is_json_with_fn_names_and_types(self, call: Call) -> None:
        """A plain JSON parser reads the output with Fn's keys, in Go's order, and the values."""
        text = call.to_json()
        document = json.loads(text)
        assert keys(text) == [k for k in GO_FIELD_ORDER if k in document]
        for name in ["id", "status", "app_id", "app_name", "trigger_id", "fn_id"]:
            assert document[name] == getattr(call, name)
        for name in ["image", "type", "payload", "url", "method", "syslog_url", "error"]:
            assert document.get(name, "") == getattr(call, name)
        for name in ["delay", "timeout", "idle_timeout", "tmpfs_size", "memory"]:
            assert document.get(name, 0) == getattr(call, name)
        assert document.get("execution_duration", 0) == call.execution_duration
        assert document.get("cpus", "0m") == f"{call.cpus}m"
        assert document.get("config", {}) == call.config
        assert document.get("headers", {}) == call.headers
        assert document.get("annotations", {}) == {
            k: json.loads(v) for k, v in call.annotations.items()
        }
        for name in ["completed_at", "created_at", "started_at"]:
            assert _parse_time(document[name]) == getattr(call, name)
        stats = [Stat(_parse_time(s["timestamp"]), s["metrics"]) for s in document.get("stats", [])]
        assert stats == call.stats
