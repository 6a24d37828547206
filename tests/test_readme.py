"""The README's Python examples run as written."""

from __future__ import annotations

import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_block(containing: str) -> str:
    """Return the README's fenced Python block that contains the given text."""
    blocks: list[str] = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    matching = [block for block in blocks if containing in block]
    assert len(matching) == 1, f"one README block should contain {containing!r}"
    return matching[0]


def run(source: str, tmp_path: Path) -> None:
    """Run Python source as a script."""
    script = tmp_path / "example.py"
    script.write_text(source)
    runpy.run_path(str(script), run_name="__main__")


class TestReadme:
    def test_placing_example(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The placement example with fakes prints the runner's 200 and body."""
        run(python_block("CHPlacer(PlacerConfig"), tmp_path)
        assert capsys.readouterr().out == "200 b'hi'\n"

    def test_runner_example(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The gRPC example, against a real runner process, prints what the README says."""
        with subprocess.Popen(
            [sys.executable, "-m", "runnerpool", "runner", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as runner:
            try:
                assert runner.stdout is not None
                address = runner.stdout.readline().removeprefix("runner listening on ").strip()
                run(python_block("StaticRunnerPool").replace("127.0.0.1:9190", address), tmp_path)
            finally:
                runner.terminate()
                runner.wait(timeout=10)
        out = capsys.readouterr().out
        assert out == '200 b\'{"message": "Hello, Ada!"}\'\n'
        assert 'prints `200 b\'{"message": "Hello, Ada!"}\'`' in README.read_text()

    def test_metrics_example(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """The metrics example registers the views and prints the Prometheus text."""
        run(python_block("register_placer_views"), tmp_path)
        out = capsys.readouterr().out
        assert "# HELP fn_lb_placer_latency LB Placer Latency" in out
        assert 'fn_lb_placer_placed_ok_count_total{fn_id="hello",runner="10.0.0.7:9190"} 1.0' in out

    def test_functions_example_loads(self) -> None:
        """The README's functions file is a valid configuration."""
        from runnerpool.lb._registry import Registry

        blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), flags=re.DOTALL)
        assert len(blocks) == 1
        function = Registry.from_toml(blocks[0]).function("hello")
        assert function is not None
        assert (function.image, function.memory, function.app.config) == (
            "hello",
            128,
            {"GREETING": "hi"},
        )
