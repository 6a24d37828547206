"""The Engage benchmark runs end to end and prints its table (speed is not asserted)."""

from __future__ import annotations

import os
import re
import time

import pytest
from bench import engage


class TestEngageBenchmark:
    @pytest.mark.timeout(30)
    def test_prints_every_row(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A tiny run prints a row per case and concurrency, and the target lines."""
        engage.main(
            ["--calls", "30", "--warmup", "10", "--repeats", "1", "--concurrency", "1", "2"]
        )
        out = capsys.readouterr().out
        for label in engage.CASE_LABELS.values():
            for concurrency in (1, 2):
                row = re.search(rf"^{re.escape(label)} +{concurrency} +\d+ ", out, re.MULTILINE)
                assert row is not None, f"no row for {label} at concurrency {concurrency}"
        assert "target: >= 3500 calls/s" in out

    def test_query_call_has_query_string_annotations_and_cpus(self) -> None:
        """The query call model carries what the old codec's fast path refused, and reads back."""
        call = engage.template_call("query")
        assert "?" in call.url
        assert call.annotations
        assert call.cpus
        assert type(call).from_json(call.to_json()) == call
        assert engage.template_call().annotations == {}

    def test_process_cpu_reads_this_process(self) -> None:
        """/proc's CPU figure for this process is close to process_time()."""
        deadline = time.process_time() + 0.05
        while time.process_time() < deadline:  # burn a little CPU
            pass
        assert abs(engage.process_cpu(os.getpid()) - time.process_time()) < 0.1
