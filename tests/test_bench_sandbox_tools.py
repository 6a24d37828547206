"""The sandbox tools benchmark runs end to end and prints its table (speed is not asserted)."""

from __future__ import annotations

import re
import sys

import pytest
from bench import sandbox_tools


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux sandboxes")
@pytest.mark.timeout(120)
def test_prints_a_row_per_way(capsys: pytest.CaptureFixture[str]) -> None:
    """A two-run benchmark prints plain, bwrap and unshare rows with their times."""
    sandbox_tools.main(["--runs", "2"])
    out = capsys.readouterr().out
    for way in ("plain", "bwrap", "unshare"):
        assert re.search(rf"^{way} +\d+\.\d +\d+\.\d +[+-]\d+\.\d$", out, re.MULTILINE), out
