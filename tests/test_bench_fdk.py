"""The FDK benchmark runs end to end and prints its table (speed is not asserted)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from bench import fdk

from tests.fdk.conftest import alive, wheelhouse


class TestFdkBenchmark:
    @pytest.mark.timeout(60)
    def test_prints_every_row(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A tiny run prints a row per path, the start-to-ready row and the target lines."""
        # The benchmark's work directory under a directory of this test's own: the leak check
        # below then sees this run's processes only, not another run's on the same machine.
        # Short (not pytest's tmp_path): function sockets live under it, and a unix socket's
        # path has at most 107 bytes.
        with tempfile.TemporaryDirectory(prefix="rpb") as own:
            monkeypatch.setattr(tempfile, "tempdir", own)
            self.run_and_check(capsys, Path(own))

    def run_and_check(self, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
        """Run the benchmark with its work directory in ``tmp_path``; check what it printed."""
        fdk.main(
            ["--rounds", "2", "--warm", "5", "--warmup", "5", "--wheelhouse", str(wheelhouse())]
        )
        out = capsys.readouterr().out
        number = r"[+-]?\d+\.\d+"
        for label in fdk.LABELS.values():
            row = re.search(
                rf"^{re.escape(label)} +{number} +{number} +{number} +{number} +{number} "
                rf"+{number}x +\d+",
                out,
                re.MULTILINE,
            )
            assert row is not None, f"no row for {label}:\n{out}"
        assert re.search(rf"^FDK start-to-ready +{number} +{number} +1\.00x$", out, re.MULTILINE)
        assert "target: warm overhead <= 0.3 ms p50" in out
        for label in ("FdkExecutor.execute", "GrpcRunner.try_exec"):
            assert re.search(rf"^  {label}: warm \+{number} ms: (met|missed); cold ", out, re.M)
        assert bench_processes(tmp_path) == [], "the benchmark left processes behind"


def bench_processes(under: Path) -> list[int]:
    """The live processes started from a benchmark work directory in ``under``."""
    marker = f"{under}/rp-bench-fdk-".encode()
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if entry.name.isdigit() and marker in command and alive(int(entry.name)):
            found.append(int(entry.name))
    return found
