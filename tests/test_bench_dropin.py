"""The drop-in benchmark runs end to end and prints its table (speed is not asserted)."""

from __future__ import annotations

import re

import pytest
from bench import dropin


class TestDropinBenchmark:
    @pytest.mark.timeout(60)
    def test_prints_every_row(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A tiny run prints a row per path, the baseline's ratio being 1.00."""
        dropin.main(["--seconds", "0.3", "--repeats", "1", "--concurrency", "2", "--lookups", "50"])
        out = capsys.readouterr().out
        for path in ("file invoke", "file trigger", "api invoke", "api trigger"):
            assert re.search(rf"^\| {path} \| \d+ \| \d+\.\d\d \|", out, re.MULTILINE), out
        assert re.search(r"^\| file invoke \| \d+ \| 1\.00 \|", out, re.MULTILINE)
        for source in ("file", r"api \(warm cache\)"):
            assert re.search(rf"^\| {source} \| \d+\.\d \| \d+\.\d\d \|", out, re.MULTILINE), out
