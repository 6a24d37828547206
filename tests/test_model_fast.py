"""The plain-JSON fast path of Call.from_json answers exactly what the exact parser does."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from runnerpool import Call
from runnerpool._model_fast import decode_plain

KEYS = [
    "id", "status", "image", "type", "timeout", "idle_timeout", "memory", "tmpfs_size",
    "delay", "execution_duration", "config", "headers", "created_at", "started_at",
    "completed_at", "app_id", "fn_id", "cpus", "annotations", "Image", "FN_ID", "unknown",
]  # fmt: skip

BOUNDS = [0, 1, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**32, 2**63, 2**64 - 1, 2**64]

values = st.recursive(
    st.none()
    | st.booleans()
    | st.sampled_from(BOUNDS)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from(
        [
            "0001-01-01T00:00:00.000Z",
            "2026-11-27T20:04:45.158Z",
            "2026-11-27T20:04:45.158+05:30",
            "2026-11-27T20:04:45.158-00:00",
            "2026-02-30T20:04:45.158Z",
            "2026-11-27T24:00:00.000Z",
            "2026-11-27T20:04:45Z",
            "",
            "100m",
        ]
    ),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)


def exact(text: str) -> Call | None:
    """The exact parser's answer, or None when it refuses the text."""
    try:
        return Call._from_json_exact(text)
    except ValueError:
        return None


class TestFastPath:
    @given(st.dictionaries(st.sampled_from(KEYS), values, max_size=8))
    def test_agrees_with_the_exact_parser(self, document: dict[str, object]) -> None:
        """On any object, the fast path answers nothing or exactly the exact parser's call."""
        text = json.dumps(document)
        fast = decode_plain(text)
        if fast is not None:
            assert Call(**fast) == exact(text)  # type: ignore[arg-type]

    @given(
        st.builds(
            Call,
            id=st.text(max_size=26),
            image=st.text(max_size=10),
            timeout=st.integers(0, 2**31 - 1),
            memory=st.integers(0, 2**64 - 1),
            config=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
            headers=st.dictionaries(
                st.text(max_size=5), st.lists(st.text(max_size=5), max_size=2), max_size=2
            ),
            created_at=st.none()
            | st.datetimes(min_value=datetime(1970, 1, 1), timezones=st.just(UTC)).map(
                lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000)
            ),
            fn_id=st.text(max_size=26),
        )
    )
    def test_takes_what_load_balancers_send(self, call: Call) -> None:
        """What Call.to_json writes (no escapes needed) decodes on the fast path, unchanged."""
        text = call.to_json()
        fast = decode_plain(text)
        if "\\u" not in text:
            assert fast is not None
        if fast is not None:
            assert Call(**fast) == call  # type: ignore[arg-type]

    def test_offsets_and_zero_time(self) -> None:
        """Offsets are kept, +00:00 is UTC, Go's zero time is None."""
        text = json.dumps(
            {
                "created_at": "2026-11-27T20:04:45.158+05:30",
                "started_at": "2026-11-27T20:04:45.158+00:00",
                "completed_at": "0001-01-01T00:00:00.000Z",
            }
        )
        fields = decode_plain(text)
        assert fields is not None
        assert fields["created_at"] == datetime(
            2026, 11, 27, 20, 4, 45, 158000, tzinfo=timezone(timedelta(hours=5, minutes=30))
        )
        assert fields["started_at"] == datetime(2026, 11, 27, 20, 4, 45, 158000, tzinfo=UTC)
        assert fields["completed_at"] is None
        assert Call(**fields) == Call._from_json_exact(text)  # type: ignore[arg-type]

    def test_hands_over_what_is_not_plain(self) -> None:
        """Escapes, duplicate keys, odd-case keys, cpus and -0 go to the exact parser."""
        for text in (
            '{"id": "\\u00e9"}',
            '{"id": "a", "id": "b"}',
            '{"Image": "x"}',
            '{"cpus": "100m"}',
            '{"memory": -0}',
            "null",
            "[",
        ):
            assert decode_plain(text) is None, text
