"""Fn's slot key: the vectors of spec §10.3, and what makes keys differ."""

from __future__ import annotations

from dataclasses import replace

import pytest

from runnerpool._model import Call
from runnerpool.fdk import slot_key

VECTOR_CALL = Call(
    app_id="app1",
    fn_id="fn1",
    image="img:1",
    timeout=30,
    idle_timeout=30,
    memory=128,
    config={
        "FN_TYPE": "sync",
        "FN_FN_ID": "fn1",
        "FN_APP_ID": "app1",
        "FN_MEMORY": "128",
        "FN_LISTENER": "unix:/tmp/iofs/lsnr.sock",
        "FN_FORMAT": "http-stream",
    },
    annotations={"com.example/k": '"v"'},
)


@pytest.mark.parametrize(
    ("call", "extensions", "expected"),
    [
        pytest.param(
            VECTOR_CALL,
            "",
            "79b16ec2da8b67584b176cc5ed1641160d0a61777d3bd8a2b9aabc290df56dc9",
            id="model",
        ),
        pytest.param(
            VECTOR_CALL,
            "ext",
            "690fadf65fbd369bec44916a12c0fb39076cc59d5a5e2563a1af0510b4455611",
            id="model+extensions",
        ),
        pytest.param(
            Call(),
            "",
            "eb142b0cae0baa72a767ebc0823d1be94e14c5bfc52d8e417fc4302fceb6240c",
            id="empty",
        ),
    ],
)
def test_vectors(call: Call, extensions: str, expected: str) -> None:
    """The key is byte for byte Fn's getSlotQueueKey."""
    assert slot_key(call, extensions).hex() == expected


@pytest.mark.parametrize(
    "change",
    [
        {"app_id": "app2"},
        {"fn_id": "fn2"},
        {"image": "img:2"},
        {"timeout": 31},
        {"idle_timeout": 31},
        {"memory": 256},
        {"cpus": 100},
        {"syslog_url": "tcp://logs"},
        {"config": {**VECTOR_CALL.config, "K": "v"}},
        {"annotations": {}},
    ],
    ids=lambda change: next(iter(change)),
)
def test_every_field_counts(change: dict[str, object]) -> None:
    """Changing any field that shapes the process changes the key."""
    assert slot_key(replace(VECTOR_CALL, **change)) != slot_key(VECTOR_CALL)  # type: ignore[arg-type]


def test_order_of_maps_does_not_count() -> None:
    """Config and annotations are hashed in key order, whatever order they were given in."""
    reordered = replace(VECTOR_CALL, config=dict(reversed(list(VECTOR_CALL.config.items()))))
    assert slot_key(reordered) == slot_key(VECTOR_CALL)


def test_headers_do_not_count() -> None:
    """Per-call fields (id, headers, body) do not split processes."""
    assert slot_key(replace(VECTOR_CALL, id="x", headers={"A": ["b"]})) == slot_key(VECTOR_CALL)
