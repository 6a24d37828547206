"""The in-process tracing benchmark runs end to end and prints its table (speed is not asserted)."""

from __future__ import annotations

from bench import tracing

from runnerpool import _tracing


class TestTracingBenchmark:
    def test_prints_every_case(self) -> None:
        """A tiny run prints a row per scenario and tracing setting, and leaves tracing off."""
        lines: list[str] = []
        tracing.main(["--calls", "20", "--repeats", "1"], out=lines.append)
        text = "\n".join(lines)
        for scenario, _ in tracing.SCENARIOS:
            for case, _ in tracing.CASES:
                assert f"{scenario:<14} {case:<22} " in text
        assert _tracing.active is None
