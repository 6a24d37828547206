"""The codec benchmark runs and prints its table (speed is not asserted)."""

from __future__ import annotations

import re

import pytest
from bench import codec

from runnerpool import Call


class TestCodecBenchmark:
    def test_prints_every_row(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A tiny run prints a decode and an encode row for each call."""
        codec.main(["--number", "5", "--repeats", "1"])
        out = capsys.readouterr().out
        for name in codec.calls():
            for operation in ("decode", "encode"):
                row = re.search(rf"^{re.escape(name)} +{operation} +\d+\.\d", out, re.MULTILINE)
                assert row is not None, f"no row for {name} {operation}:\n{out}"

    def test_calls_round_trip(self) -> None:
        """Each benchmark call reads back from its own JSON unchanged."""
        for fields in codec.calls().values():
            call = Call(**fields)
            assert Call.from_json(call.to_json()) == call
