"""Tests for the call model and its Go-exact JSON (``runnerpool._model``)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runnerpool._model import MAX_MILLI_CPUS, Call, Stat

# The example TryCall JSON of the spec (section 6.3), which the spec marks as verified on Fn.
SPEC_EXAMPLE = (
    '{"id":"01CALLID0000000000000000","status":"running","image":"img:1","type":"sync",'
    '"url":"http://lb/invoke/fn1","method":"POST","timeout":30,"idle_timeout":30,"memory":128,'
    '"config":{"FN_APP_ID":"app1","FN_FN_ID":"fn1","FN_MEMORY":"128","FN_TYPE":"sync"},'
    '"headers":{"Content-Type":["text/plain"]},"completed_at":"0001-01-01T00:00:00.000Z",'
    '"created_at":"2026-11-27T20:04:45.158Z","started_at":"2026-11-27T20:04:45.158Z",'
    '"app_id":"app1","app_name":"myapp","trigger_id":"","fn_id":"fn1"}'
)
ZERO = "0001-01-01T00:00:00.000Z"
ZERO_CALL_JSON = (
    f'{{"id":"","status":"","completed_at":"{ZERO}","created_at":"{ZERO}",'
    f'"started_at":"{ZERO}","app_id":"","app_name":"","trigger_id":"","fn_id":""}}'
)
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


def utc(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
) -> datetime:
    """Return a UTC datetime."""
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def zone(**offset: int) -> timezone:
    """Return a fixed-offset zone, from timedelta arguments."""
    return timezone(timedelta(**offset))


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


class TestCallJson:
    def test_spec_example_round_trips_byte_for_byte(self) -> None:
        """The spec's TryCall JSON parses and re-serializes to the identical bytes."""
        call = Call.from_json(SPEC_EXAMPLE)
        assert call.to_json() == SPEC_EXAMPLE
        assert call.created_at == T0
        assert call.completed_at is None
        assert call.headers == {"Content-Type": ["text/plain"]}
        assert (call.timeout, call.idle_timeout, call.memory) == (30, 30, 128)

    def test_zero_call(self) -> None:
        """A zero call writes exactly the always-present keys, with Go's zero time."""
        assert Call().to_json() == ZERO_CALL_JSON

    def test_zero_call_reads_back_as_zero(self) -> None:
        """The zero call's JSON decodes to a zero call."""
        assert Call.from_json(ZERO_CALL_JSON) == Call()

    def test_fields_follow_go_declaration_order(self) -> None:
        """Dataclass fields and JSON keys both follow Go's declaration order."""
        assert [f.name for f in dataclasses.fields(Call)] == GO_FIELD_ORDER
        assert keys(full_call().to_json()) == GO_FIELD_ORDER

    def test_full_call_encoding(self) -> None:
        """Every field encodes with Go's representation."""
        t = '"2026-11-27T20:04:45.158Z"'
        assert full_call().to_json() == (
            '{"id":"i","status":"s","image":"img","delay":1,"type":"sync","payload":"p",'
            '"url":"u","method":"POST","timeout":2,"idle_timeout":3,"tmpfs_size":4,"memory":5,'
            '"cpus":"6m","config":{"k":"v"},"annotations":{"a":1},"headers":{"h":["v"]},'
            f'"syslog_url":"tcp://x","completed_at":{t},"created_at":{t},"started_at":{t},'
            f'"execution_duration":7,"stats":[{{"timestamp":{t},"metrics":{{"m":1}}}}],'
            '"error":"e","app_id":"a","app_name":"n","trigger_id":"t","fn_id":"f"}'
        )

    def test_full_call_round_trips(self) -> None:
        """A call with every field set decodes back to itself."""
        assert Call.from_json(full_call().to_json()) == full_call()

    def test_map_keys_are_sorted_by_code_point(self) -> None:
        """Map keys are sorted as Go sorts them (UTF-8 byte order)."""
        call = Call(config={"é": "1", "a": "2", "Z": "3", "B": "4"})
        assert '"config":{"B":"4","Z":"3","a":"2","é":"1"}' in call.to_json()

    def test_empty_header_list_is_an_empty_array(self) -> None:
        """A header with no values is written as an empty array."""
        assert '"headers":{"X":[]}' in Call(headers={"X": []}).to_json()

    def test_stat_with_no_metrics_or_time(self) -> None:
        """A zero stat keeps both its keys, as neither has omitempty in Go."""
        assert (
            f'"stats":[{{"timestamp":"{ZERO}","metrics":{{}}}}]' in Call(stats=[Stat()]).to_json()
        )


class TestOmitEmpty:
    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("image", "i"), ("delay", -1), ("type", "sync"), ("payload", "p"), ("url", "u"),
            ("method", "GET"), ("timeout", 1), ("idle_timeout", 1), ("tmpfs_size", 1),
            ("memory", 1), ("cpus", 1), ("config", {"a": ""}), ("annotations", {"a": "0"}),
            ("headers", {"a": []}), ("syslog_url", "s"), ("execution_duration", -1),
            ("stats", [Stat()]), ("error", "e"),
        ],
    )  # fmt: skip
    def test_field_is_written_only_when_set(self, name: str, value: Any) -> None:
        """An omitempty field appears when set and is left out at its zero value."""
        assert name in keys(Call(**{name: value}).to_json())
        assert name not in keys(Call().to_json())

    @pytest.mark.parametrize("name", ALWAYS_PRESENT)
    def test_field_is_always_written(self, name: str) -> None:
        """Fields without omitempty, and all times, are written even when zero."""
        assert name in keys(Call().to_json())

    def test_set_fields_keep_zero_valued_neighbours_out(self) -> None:
        """Setting one field does not bring in other omitempty fields."""
        assert keys(Call(memory=128).to_json()) == [
            "id", "status", "memory", "completed_at", "created_at", "started_at",
            "app_id", "app_name", "trigger_id", "fn_id",
        ]  # fmt: skip


class TestCpus:
    @pytest.mark.parametrize(
        ("cpus", "text"), [(100, '"100m"'), (1, '"1m"'), (1024000, '"1024000m"')]
    )
    def test_written_as_milli_cpus(self, cpus: int, text: str) -> None:
        """Milli-CPUs are written as a quoted "<n>m" string."""
        assert f'"cpus":{text}' in Call(cpus=cpus).to_json()

    @pytest.mark.parametrize(
        ("text", "cpus"),
        [
            ('"100m"', 100), ('"0100m"', 100), ('"0m"', 0), ('"1024000m"', MAX_MILLI_CPUS),
            ('"0.1"', 100), ('"1.5"', 1500), ('"1"', 1000), ('"1024"', MAX_MILLI_CPUS),
            ('".5"', 500), ('"2."', 2000), ('"1e-3"', 1), ('"-0"', 0), ('"+0.25"', 250),
            ('"1_0.5"', 10500), ('"0x1p-2"', 250), ('" 100m "', 100), ('"\u00a00.1"', 100),
            ('""', 0), ('"  "', 0), ("null", 0),
        ],
    )  # fmt: skip
    def test_parsed(self, text: str, cpus: int) -> None:
        """Milli-CPUs, fractional CPUs, empty strings and null parse as Go parses them."""
        assert Call.from_json(f'{{"cpus":{text}}}').cpus == cpus

    def test_null_resets_an_earlier_value(self) -> None:
        """A later null cpus sets it back to zero, as Go's UnmarshalJSON does."""
        assert Call.from_json('{"cpus":"5m","cpus":null}').cpus == 0

    @pytest.mark.parametrize(
        "text",
        [
            '"1024001m"', '"1024.001"', '"1025"', '"-0.1"', '"-1m"', '"+1m"', '"abc"', '"m"',
            '"1.5m"', '"1_000m"', '"\\u0031m"', '"NaN"', '"inf"', '"Infinity"', '"1e400"',
            '"_1"', '"1__0"', '"0x1"', '"1e"', "100", "0.1", "true", "[]", "{}",
            '"99999999999999999999999999999m"',
        ],
    )  # fmt: skip
    def test_invalid_rejected(self, text: str) -> None:
        """Out-of-range, malformed and non-string CPU values are refused, naming the field."""
        with pytest.raises(ValueError, match="cpus"):
            Call.from_json(f'{{"cpus":{text}}}')

    @pytest.mark.parametrize("cpus", [MAX_MILLI_CPUS + 1, -1])
    def test_out_of_range_not_encoded(self, cpus: int) -> None:
        """to_json refuses CPUs Go's MarshalJSON would refuse."""
        with pytest.raises(ValueError, match="cpus"):
            Call(cpus=cpus).to_json()


class TestEscaping:
    @pytest.mark.parametrize(
        ("text", "escaped"),
        [
            ("<a&b>", "\\u003ca\\u0026b\\u003e"), ("\u2028\u2029", "\\u2028\\u2029"),
            ("\b\f", "\\u0008\\u000c"), ("\n\r\t", "\\n\\r\\t"), ("\x00\x1f", "\\u0000\\u001f"),
            ('"\\', '\\"\\\\'), ("\x7f", "\x7f"), ("é☃😀", "é☃😀"), ("/", "/"),
            ("\ud800", "\\ufffd"),
        ],
    )  # fmt: skip
    def test_strings_escaped_as_go(self, text: str, escaped: str) -> None:
        """Strings get Go 1.13's escapes: HTML-safe, controls as u00XX, raw UTF-8 otherwise."""
        assert f'"id":"{escaped}"' in Call(id=text).to_json()

    def test_map_keys_and_values_escaped(self) -> None:
        """Map keys and values, header values included, are escaped the same way."""
        call = Call(config={"<k>": "&"}, headers={"a&b": ["<"]})
        document = call.to_json()
        assert '"config":{"\\u003ck\\u003e":"\\u0026"}' in document
        assert '"headers":{"a\\u0026b":["\\u003c"]}' in document

    def test_annotation_values_html_escaped(self) -> None:
        """Go escapes <, >, & and U+2028/9 in raw annotation values too, and nothing else."""
        call = Call(annotations={"a": '{"x":"<&>\u2028","y":"\\b\\u00e9"}'})
        assert '"annotations":{"a":{"x":"\\u003c\\u0026\\u003e\\u2028","y":"\\b\\u00e9"}}' in (
            call.to_json()
        )

    def test_escaped_text_reads_back(self) -> None:
        """Escaped strings decode back to the original text."""
        text = "<a&b>\u2028\b\f\n\x00\x7f é😀"
        assert Call.from_json(Call(id=text, config={text: text}).to_json()).config == {text: text}


class TestAnnotations:
    @pytest.mark.parametrize(
        ("text", "raw"),
        [
            ('{ "a" : 1e3 }', '{"a":1e3}'), ("[ 1 ,\n\t2 ]", "[1,2]"), ('" a  b "', '" a  b "'),
            ('"\\u0041\\/"', '"\\u0041\\/"'), ('{"b":1,"a":2}', '{"b":1,"a":2}'),
            ("-0.0E+01", "-0.0E+01"), ("1234567890123456789012345", "1234567890123456789012345"),
            ('"<&>"', '"<&>"'), ("null", "null"), ("true", "true"),
            ('{ "s" : "x \\" } ", "t": [ ] }', '{"s":"x \\" } ","t":[]}'),
        ],
    )  # fmt: skip
    def test_raw_value_compacted_and_kept(self, text: str, raw: str) -> None:
        """Annotation values keep their exact text, minus whitespace outside strings."""
        call = Call.from_json(f'{{"annotations":{{"k":{text}}}}}')
        assert call.annotations == {"k": raw}

    def test_duplicate_keys_merge_and_last_wins(self) -> None:
        """Repeated annotations objects merge, later keys winning, as Go's map decoding does."""
        call = Call.from_json('{"annotations":{"a":1,"b":2},"annotations":{"b":3}}')
        assert call.annotations == {"a": "1", "b": "3"}

    def test_null_empties(self) -> None:
        """A null annotations map empties it."""
        assert Call.from_json('{"annotations":{"a":1},"annotations":null}').annotations == {}

    def test_to_json_compacts_user_values(self) -> None:
        """Values set in Python are compacted on output, as Go's encoder compacts them."""
        call = Call(annotations={"b": '{ "x" : [ 1 , 2 ] }', "a": ' "v" '})
        assert '"annotations":{"a":"v","b":{"x":[1,2]}}' in call.to_json()

    @pytest.mark.parametrize("raw", ["", "{", "nope", "1 2", "NaN", "'a'", '"\x01"'])
    def test_invalid_value_not_encoded(self, raw: str) -> None:
        """A value that is not one JSON value is refused, naming the annotation."""
        with pytest.raises(ValueError, match=r"annotations\['bad'\]"):
            Call(annotations={"bad": raw}).to_json()


class TestTimes:
    @pytest.mark.parametrize(
        ("value", "text"),
        [
            (utc(2020, 1, 2, 3, 4, 5, 999999), "2020-01-02T03:04:05.999Z"),
            (utc(2020, 1, 2, 3, 4, 5), "2020-01-02T03:04:05.000Z"),
            (utc(5, 1, 2), "0005-01-02T00:00:00.000Z"),
            (
                datetime(2020, 1, 2, 3, 4, 5, 1000, tzinfo=zone(hours=5, minutes=30)),
                "2020-01-02T03:04:05.001+05:30",
            ),
            (datetime(2020, 1, 2, tzinfo=zone(hours=-8)), "2020-01-02T00:00:00.000-08:00"),
            (datetime(2020, 1, 2, tzinfo=zone(seconds=-30)), "2020-01-02T00:00:00.000+00:00"),
            (datetime(2020, 1, 2, tzinfo=zone(seconds=-90)), "2020-01-02T00:00:00.000-00:01"),
            (None, ZERO),
        ],
    )  # fmt: skip
    def test_formatted_as_go(self, value: datetime | None, text: str) -> None:
        """Times are truncated to milliseconds and written with Z or Go's +hh:mm offset."""
        assert f'"created_at":"{text}"' in Call(created_at=value).to_json()

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2020-01-02T03:04:05Z", utc(2020, 1, 2, 3, 4, 5)),
            ("2020-01-02T03:04:05.1Z", utc(2020, 1, 2, 3, 4, 5, 100000)),
            ("2020-01-02T03:04:05.123456789123Z", utc(2020, 1, 2, 3, 4, 5, 123456)),
            ("2020-01-02T3:04:05Z", utc(2020, 1, 2, 3, 4, 5)),
            ("2020-01-02T03:04:05.+12Z", utc(2020, 1, 2, 3, 4, 5, 12000)),
            ("2020-01-02T03:04:05.+12345Z", utc(2020, 1, 2, 3, 4, 5, 12345)),
            ("2020-01-02T03:04:05.-00Z", utc(2020, 1, 2, 3, 4, 5)),
            ("2020-01-02T05:34:05+02:30", utc(2020, 1, 2, 3, 4, 5)),
            ("2020-01-02T02:04:05+-1:00", utc(2020, 1, 2, 3, 4, 5)),
            ("2020-01-02T03:04:05+00:00", utc(2020, 1, 2, 3, 4, 5)),
            ("", utc(1970, 1, 1)),
        ],
    )  # fmt: skip
    def test_parsed_as_go(self, text: str, expected: datetime) -> None:
        """Go's accepted layouts parse, quirks included, and "" is the Unix epoch."""
        assert Call.from_json(f'{{"created_at":"{text}"}}').created_at == expected

    def test_offset_kept(self) -> None:
        """A parsed offset is kept, so the time is written back with it."""
        text = "2020-01-02T03:04:05.678-07:00"
        call = Call.from_json(f'{{"started_at":"{text}"}}')
        assert call.started_at is not None
        assert call.started_at.utcoffset() == timedelta(hours=-7)
        assert f'"started_at":"{text}"' in call.to_json()

    def test_zero_time_is_none(self) -> None:
        """Go's zero time reads as None; an equal instant with an offset keeps its offset."""
        assert Call.from_json(f'{{"created_at":"{ZERO}"}}').created_at is None
        zero_plus_one = "0001-01-01T01:00:00.000+01:00"
        call = Call.from_json(f'{{"created_at":"{zero_plus_one}"}}')
        assert f'"created_at":"{zero_plus_one}"' in call.to_json()

    def test_null_leaves_time_unchanged(self) -> None:
        """A null time leaves the field as it was, as Go does for a TextUnmarshaler."""
        call = Call.from_json('{"created_at":"2020-01-02T03:04:05Z","created_at":null}')
        assert call.created_at == datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)

    @pytest.mark.parametrize(
        "text",
        [
            "x", "2020-01-02", "2020-01-02t03:04:05Z", "2020-01-02T03:04:05z",
            "2020-01-02T03:04:05", "2020-13-02T03:04:05Z", "2020-02-30T03:04:05Z",
            "2020-01-02T24:04:05Z", "2020-01-02T03:60:05Z", "2020-01-02T03:04:60Z",
            "2020-01-02T03:04:05.Z", "2020-01-02T03:04:05.-12Z", "2020-01-02T03:04:05+0100",
            "2020-01-02T03:04:05Z ", "0000-01-02T03:04:05Z", "2020-01-02T03:04:05+24:00",
            "2020-1-02T03:04:05Z", "2020-01-02T123:04:05Z",
        ],
    )  # fmt: skip
    def test_invalid_rejected(self, text: str) -> None:
        """Times Go refuses, or that datetime cannot hold, are refused naming the field."""
        with pytest.raises(ValueError, match="created_at"):
            Call.from_json(f'{{"created_at":"{text}"}}')

    def test_naive_datetime_not_encoded(self) -> None:
        """A naive datetime is refused, naming the field, since Go times carry a zone."""
        with pytest.raises(ValueError, match="started_at"):
            Call(started_at=datetime(2020, 1, 2)).to_json()


class TestDecoding:
    def test_missing_keys_get_zero_values(self) -> None:
        """Keys left out decode to Go's zero values."""
        assert Call.from_json("{}") == Call()

    def test_unknown_keys_ignored(self) -> None:
        """Unknown keys, whatever their value, are ignored."""
        assert Call.from_json('{"nope":[1,{"x":null}],"id":"a","extra":{}}') == Call(id="a")

    def test_keys_match_case_insensitively(self) -> None:
        """Keys match fields case-insensitively, with Go's long-s folding."""
        call = Call.from_json('{"ID":"a","App_Id":"b","\u017ftatus":"c","FN_ID":"d"}')
        assert (call.id, call.app_id, call.status, call.fn_id) == ("a", "b", "c", "d")

    def test_later_duplicate_wins(self) -> None:
        """A repeated key's last value wins."""
        assert Call.from_json('{"id":"a","Id":"b"}').id == "b"

    def test_null_leaves_scalars_unchanged(self) -> None:
        """A null string or integer leaves the field as it was."""
        call = Call.from_json('{"id":"a","id":null,"timeout":3,"timeout":null}')
        assert (call.id, call.timeout) == ("a", 3)

    def test_maps_merge_and_null_empties(self) -> None:
        """Repeated maps merge, null members are zero values, and a null map empties it."""
        call = Call.from_json('{"config":{"a":"1"},"config":{"b":null},"headers":{"h":null}}')
        assert call.config == {"a": "1", "b": ""}
        assert call.headers == {"h": []}
        assert Call.from_json('{"config":{"a":"1"},"config":null}').config == {}

    def test_stats(self) -> None:
        """Stats decode with their timestamps and uint64 metrics."""
        call = Call.from_json(
            '{"stats":[{"timestamp":"2020-01-02T03:04:05.006Z","metrics":{"cpu":18446744073709551615}},'
            '{"Metrics":{"m":null},"timestamp":null},null]}'
        )
        when = datetime(2020, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
        assert call.stats == [Stat(when, {"cpu": 2**64 - 1}), Stat(None, {"m": 0}), Stat()]

    def test_null_document_is_a_zero_call(self) -> None:
        """A null document decodes to a zero call, as Go's Unmarshal leaves the struct as is."""
        assert Call.from_json(" null ") == Call()

    def test_bytes_invalid_utf8_become_replacement_characters(self) -> None:
        """Bytes are UTF-8; each invalid byte becomes one U+FFFD, as in Go."""
        assert Call.from_json(b'{"id":"\xff\xe2\x82A\xc3\xa9"}').id == "\ufffd\ufffd\ufffdA\u00e9"

    def test_unpaired_surrogate_escape_becomes_replacement_character(self) -> None:
        """An unpaired surrogate escape decodes to U+FFFD, as in Go; a pair decodes normally."""
        assert Call.from_json('{"id":"\\ud800x\\ud83d\\ude00"}').id == "\ufffdx\U0001f600"

    def test_whitespace_around_tokens(self) -> None:
        """JSON whitespace is allowed anywhere between tokens."""
        text = ' \n{ "timeout" :\t30 , "cpus" : "1m" , "annotations" : { "a" : [ ] } }\r\n'
        assert Call.from_json(text) == Call(timeout=30, cpus=1, annotations={"a": "[]"})


class TestErrors:
    @pytest.mark.parametrize(
        ("document", "field"),
        [
            ('{"timeout":2147483648}', "timeout"), ('{"delay":-2147483649}', "delay"),
            ('{"idle_timeout":1.0}', "idle_timeout"), ('{"timeout":1e2}', "timeout"),
            ('{"tmpfs_size":-1}', "tmpfs_size"), ('{"tmpfs_size":4294967296}', "tmpfs_size"),
            ('{"memory":18446744073709551616}', "memory"), ('{"memory":-0}', "memory"),
            ('{"execution_duration":9223372036854775808}', "execution_duration"),
            ('{"timeout":"30"}', "timeout"), ('{"id":5}', "id"), ('{"fn_id":true}', "fn_id"),
            ('{"config":[]}', "config"), ('{"config":{"a":1}}', "config"),
            ('{"headers":{"a":"b"}}', "headers"), ('{"headers":{"a":[1]}}', "headers"),
            ('{"annotations":[]}', "annotations"), ('{"stats":{}}', "stats"),
            ('{"stats":[1]}', "stats"), ('{"stats":[{"metrics":{"m":-1}}]}', "stats"),
            ('{"stats":[{"timestamp":"x"}]}', "stats"), ('{"created_at":5}', "created_at"),
            ('{"cpus":"x"}', "cpus"),
        ],
    )  # fmt: skip
    def test_field_errors_name_the_field(self, document: str, field: str) -> None:
        """A value of the wrong type or range raises ValueError naming its field."""
        with pytest.raises(ValueError, match=field):
            Call.from_json(document)

    @pytest.mark.parametrize(
        "document",
        [
            "", " ", "{", "{}x", "{} {}", '{"a"}', '{"a":}', '{"a":1,}', "{'a':1}", '{"a":NaN}',
            '{"a":-Infinity}', '{"a":01}', '{"a":1.}', '{"a":"\x01"}', '{"a":"\\x"}',
            "\ufeff{}", b"\xef\xbb\xbf{}", b'{"a":1}\xff', "[]", '"x"', "1", "true",
        ],
    )  # fmt: skip
    def test_malformed_documents_rejected(self, document: str | bytes) -> None:
        """Text that is not JSON, or not an object, raises ValueError."""
        with pytest.raises(ValueError):  # noqa: PT011 - any message; there is no field to name
            Call.from_json(document)

    def test_deep_nesting_rejected(self) -> None:
        """Nesting too deep for Python's parser is a ValueError, not a RecursionError."""
        with pytest.raises(ValueError, match="deep"):
            Call.from_json('{"annotations":{"a":' + "[" * 100_000 + "]" * 100_000 + "}}")

    @pytest.mark.parametrize(
        ("call", "field"),
        [
            (Call(timeout=2**31), "timeout"), (Call(delay=-(2**31) - 1), "delay"),
            (Call(tmpfs_size=-1), "tmpfs_size"), (Call(memory=2**64), "memory"),
            (Call(execution_duration=-(2**63) - 1), "execution_duration"),
            (Call(stats=[Stat(None, {"m": -1})]), r"stats\[0\]\.metrics\['m'\]"),
            (Call(stats=[Stat(datetime(2020, 1, 1), {})]), r"stats\[0\]\.timestamp"),
        ],
    )  # fmt: skip
    def test_unencodable_values_name_the_field(self, call: Call, field: str) -> None:
        """to_json refuses values Go's types cannot hold, naming the field."""
        with pytest.raises(ValueError, match=field):
            call.to_json()


def _truncate_to_ms(t: datetime) -> datetime:
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


_ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-11, minutes=-59))]
)
_TIMES = st.none() | st.datetimes(
    min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31), timezones=_ZONES
).map(_truncate_to_ms)
_ANY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
# Go escapes these in raw annotation values, so such values come back in escaped form.
_SAFE_TEXT = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="<>&\u2028\u2029"), max_size=8
)


def _json_values(text: st.SearchStrategy[str]) -> st.SearchStrategy[object]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | text
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
        max_leaves=8,
    )


def _calls(text: st.SearchStrategy[str]) -> st.SearchStrategy[Call]:
    raw_json = _json_values(text).map(
        lambda v: json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    )
    uint64 = st.integers(0, 2**64 - 1)
    return st.builds(
        Call,
        id=_ANY_TEXT, status=_ANY_TEXT, image=_ANY_TEXT, delay=st.integers(-(2**31), 2**31 - 1),
        type=_ANY_TEXT, payload=_ANY_TEXT, url=_ANY_TEXT, method=_ANY_TEXT,
        timeout=st.integers(-(2**31), 2**31 - 1), idle_timeout=st.integers(-(2**31), 2**31 - 1),
        tmpfs_size=st.integers(0, 2**32 - 1), memory=uint64, cpus=st.integers(0, MAX_MILLI_CPUS),
        config=st.dictionaries(_ANY_TEXT, _ANY_TEXT, max_size=3),
        annotations=st.dictionaries(_ANY_TEXT, raw_json, max_size=3),
        headers=st.dictionaries(_ANY_TEXT, st.lists(_ANY_TEXT, max_size=3), max_size=3),
        syslog_url=_ANY_TEXT, completed_at=_TIMES, created_at=_TIMES, started_at=_TIMES,
        execution_duration=st.integers(-(2**63), 2**63 - 1),
        stats=st.lists(
            st.builds(Stat, _TIMES, st.dictionaries(_ANY_TEXT, uint64, max_size=3)), max_size=2
        ),
        error=_ANY_TEXT, app_id=_ANY_TEXT, app_name=_ANY_TEXT, trigger_id=_ANY_TEXT,
        fn_id=_ANY_TEXT,
    )  # fmt: skip


def _parse_time(text: str) -> datetime | None:
    parsed = datetime.fromisoformat(text)
    return None if text == ZERO else parsed


class TestProperties:
    @settings(max_examples=300, deadline=None)
    @given(_calls(_SAFE_TEXT))
    def test_round_trip(self, call: Call) -> None:
        """Any call with millisecond times decodes from its own JSON to an equal call."""
        assert Call.from_json(call.to_json()) == call

    @settings(max_examples=300, deadline=None)
    @given(_calls(_ANY_TEXT))
    def test_output_is_json_with_the_same_values(self, call: Call) -> None:
        """The output is valid JSON that Python's parser reads back with the call's values."""
        document = json.loads(call.to_json())
        assert keys(call.to_json()) == [k for k in GO_FIELD_ORDER if k in document]
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

    @settings(deadline=None)
    @given(_json_values(_ANY_TEXT))
    def test_annotation_compaction_matches_compact_dumps(self, value: object) -> None:
        """Any spacing of an annotation value compacts to the compact serialization."""
        spaced = json.dumps({"annotations": {"k": value}}, indent=2, ensure_ascii=False)
        compact = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        assert Call.from_json(spaced).annotations == {"k": compact}
