"""The README's Python examples run as written."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    """Return every fenced Python block of the README."""
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


class TestReadme:
    def test_placing_example_prints_the_answer(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The placement example runs and prints the runner's 200 and body."""
        script = tmp_path / "example.py"
        script.write_text(python_blocks()[0])
        runpy.run_path(str(script), run_name="__main__")
        assert capsys.readouterr().out == "200 b'hi'\n"

    def test_metrics_example_exposes_placer_metrics(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The metrics example registers the views and prints the Prometheus text."""
        script = tmp_path / "metrics_example.py"
        script.write_text(python_blocks()[1])
        runpy.run_path(str(script), run_name="__main__")
        assert "# HELP fn_lb_placer_latency LB Placer Latency" in capsys.readouterr().out
