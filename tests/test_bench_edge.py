"""The edge benchmark runs end to end and prints its table (memory is not asserted)."""

from __future__ import annotations

import pytest
from bench import edge


class TestEdgeBenchmark:
    @pytest.mark.timeout(120)
    def test_prints_every_row(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A small run prints the idle, header flood and idle connections rows, and the log."""
        edge.main(["--flood", "2", "--header-mb", "1", "--connections", "50"])
        out = capsys.readouterr().out
        assert "idle " in out
        assert "header flood 2 x 1 MB" in out
        assert "answers {'431': 2}" in out
        assert "50 idle connections" in out
        assert "/health 5/5 ok" in out
        assert "LB log: " in out
