"""The function output benchmark runs and prints its table (speed is not asserted)."""

from __future__ import annotations

import re

import pytest
from bench import function_output


class TestFunctionOutputBenchmark:
    def test_prints_every_row(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A tiny run prints one row per destination with its ratio to the baseline."""
        function_output.main(["--lines", "200", "--rounds", "1"])
        out = capsys.readouterr().out
        for row in function_output.ROWS:
            assert re.search(rf"^{re.escape(row)} +\d+\.\d\d +\d+\.\d\dx$", out, re.M), out
