"""The placement benchmark runs end to end and prints its tables (speed is not asserted)."""

from __future__ import annotations

import pytest
from bench import placement

from runnerpool import _tracing


class TestPlacementBenchmark:
    def test_prints_every_case(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A tiny run prints a row per placer, case and metrics setting, and the hash rows."""
        placement.main(["--iterations", "20", "--repeats", "1"])
        out = capsys.readouterr().out
        for placer in ("CHPlacer", "NaivePlacer"):
            for case in ("first accepts", "3 NACKs"):
                assert f"{placer}, {case} " in out
                assert f"{placer}, {case}, metrics" in out
        assert "CHPlacer.start_index, canonical (default)" in out
        assert "variant='fn'" in out

    def test_tracing_table(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--tracing adds CHPlacer rows with tracing off, sampled out and at 100%."""
        placement.main(["--iterations", "20", "--repeats", "1", "--tracing"])
        out = capsys.readouterr().out
        for case in ("first accepts", "3 NACKs"):
            for setting in placement.TRACING_CASES:
                assert f"CHPlacer, {case}, tracing {setting[0]} " in out
        assert _tracing.active is None

    def test_baseline_comparison(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--baseline REV times CHPlacer today against REV's loop, each over its own floor."""
        placement.main(
            ["--baseline", "HEAD", "--skip-main", "--iterations", "20", "--repeats", "1"]
        )
        out = capsys.readouterr().out
        if "baseline unavailable" in out:  # no git here: said, and nothing else is made up
            return
        for case in ("today, first accepts", "baseline, first accepts", "today, 3 NACKs"):
            assert f"CHPlacer {case}" in out
        assert "x the baseline's time" in out
        assert "hash + start index" not in out  # --skip-main
