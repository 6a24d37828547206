"""The watch benchmark runs end to end and prints its tables (speed is not asserted)."""

from __future__ import annotations

import re

import pytest
from bench import watch


class TestWatchBenchmark:
    @pytest.mark.timeout(60)
    def test_prints_every_row(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A tiny run prints a row per watcher, the baseline at 1.00x, and the per-call rows."""
        watch.main(["--bundles", "3", "--edits", "3", "--idle", "0.2"])
        out = capsys.readouterr().out
        number = r"\d+\.\d+"
        for label in watch.candidates():
            row = rf"^{re.escape(label)} +{number} +{number} +{number}x +{number}$"
            assert re.search(row, out, re.MULTILINE), f"no row for {label}:\n{out}"
        assert re.search(rf"^poll 50 ms \(baseline\) +{number} +{number} +1\.00x", out, re.M)
        for label in ("stat fingerprint", "content fingerprint (bundle_version)"):
            assert re.search(rf"^{re.escape(label)} +{number}$", out, re.MULTILINE)
