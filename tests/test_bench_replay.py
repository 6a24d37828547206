"""The replay benchmark runs end to end on real processes and prints sane figures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bench import replay
from bench._replay_cluster import functions_file

from tests.fdk.conftest import alive, wheelhouse


def bench_processes() -> list[int]:
    """The live processes started in the benchmark's work directory (runners, functions)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if entry.name.isdigit() and b"rp-bench-replay-" in command and alive(int(entry.name)):
            found.append(int(entry.name))
    return found


class TestReplayBenchmark:
    @pytest.mark.timeout(120)
    def test_short_run(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A few seconds of the workload: every call answered, figures in range, both rows."""
        comparisons = replay.main(
            [
                "--model-duration",
                "40",
                "--scale",
                "0.1",
                "--functions",
                "8",
                "--runners",
                "2",
                "--placers",
                "ch",
                "--wheelhouse",
                str(wheelhouse()),
            ]
        )
        [comparison] = comparisons
        real, sim = comparison.real, comparison.sim
        assert real.calls == sim.calls > 0
        assert real.placed == real.calls, comparison.errors
        assert comparison.errors == {}
        for figures in (real, sim):
            assert 0.0 <= figures.warm_rate <= 1.0
            assert figures.attempts >= 1.0
            assert figures.calls_imbalance >= 1.0
            assert 0.0 <= figures.queue_p50 <= figures.queue_p99
        # The first call of each function is cold, on both sides.
        called = {arrival.fn_id for arrival in comparison.settings.workload().arrivals}
        for figures in (real, sim):
            assert figures.warm_rate <= 1 - len(called) / figures.placed + 1e-9
        assert comparison.cold_start > 0
        assert bench_processes() == [], "the benchmark left processes behind"
        out = capsys.readouterr().out
        assert re.search(r"^ch +release +1 real +\d+ +\d+ ", out, re.MULTILINE)
        assert re.search(r"^ch +release +1 sim +\d+ +\d+ ", out, re.MULTILINE)
        assert "warm sim-real" in out

    def test_functions_file_declares_each_function(self) -> None:
        """Each function of the workload is declared on the sleep bundle with its memory."""
        workload = replay.ReplaySettings(functions=5).workload()
        text = functions_file(workload.functions, idle_timeout=6, timeout=40)
        for fn in workload.functions:
            assert f'id = "{fn.fn_id}"\nname = "{fn.fn_id}"' in text
            assert f"memory = {fn.memory}\n" in text
        assert text.count('image = "sleep"') == 5
        assert text.count("idle_timeout = 6\n") == 5

    def test_scaled_workload(self) -> None:
        """Scaling multiplies arrival times and durations; the functions and idle timeout too."""
        settings = replay.ReplaySettings(model_duration=60, scale=0.5, functions=10)
        unscaled = replay.ReplaySettings(model_duration=60, scale=1.0, functions=10)
        scaled, model = settings.workload(), unscaled.workload()
        assert scaled.functions == model.functions
        assert [a.time for a in scaled.arrivals] == [a.time * 0.5 for a in model.arrivals]
        assert [a.duration for a in scaled.arrivals] == [a.duration * 0.5 for a in model.arrivals]
        assert settings.idle_timeout == 15
        assert replay.ReplaySettings(scale=0.01).idle_timeout == 1
