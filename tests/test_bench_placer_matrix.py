"""The placer matrix runs end to end in its smallest configuration and prints its tables."""

from __future__ import annotations

import pytest
from bench import placer_matrix


def test_smallest_matrix_prints_every_placer(capsys: pytest.CaptureFixture[str]) -> None:
    """One seed, one utilisation, one LB, 5 s: a row per placer and the verdict per placer."""
    placer_matrix.main(
        [
            "--seeds", "1",
            "--utilisations", "0.5",
            "--lbs", "1",
            "--duration", "5",
            "--jobs", "1",
            "--placers", "bounded,warm-bounded",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith(" 0.5  1")]
    # ch is added as the baseline, and is 0 points from itself.
    assert [row[2] for row in rows] == ["ch", "bounded", "warm-bounded"]
    assert rows[0][5] == "+0.0"
    assert "met every target of the default" in out
    assert out.count(" yes") + out.count(" no") >= 3
