"""The LB benchmark runs end to end and prints its table (speed is not asserted)."""

from __future__ import annotations

import re

import pytest
from bench import lb, lb_front

WRK_OUTPUT = """\
Running 3s test @ http://127.0.0.1:40000/invoke/echo
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.93ms    3.88ms  42.51ms   86.82%
    Req/Sec     1.25k   228.87     1.71k    70.00%
  Latency Distribution
     50%  812.00us
     75%   14.43ms
     90%   16.42ms
     99%    1.20s
  3750 requests in 3.00s, 398.27KB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 4
Requests/sec:   1250.00
Transfer/sec:    198.60KB
"""


class TestLBBenchmark:
    @pytest.mark.timeout(60)
    def test_prints_every_row(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A tiny run with the Python client prints every path, concurrency and summary.

        With ``--strace``, also the system calls per call (or why they are not measured).
        """
        lb.main(
            [
                "--client",
                "python",
                "--seconds",
                "0.3",
                "--warmup",
                "0.2",
                "--repeats",
                "1",
                "--concurrency",
                "1",
                "2",
                "--strace",
                "0.2",
            ]
        )
        out = capsys.readouterr().out
        assert "load generator: Python asyncio client" in out
        # System calls per call: the table, or the sentence saying why not.
        assert "system calls per call (strace" in out or "are not measured" in out
        for label in (lb.LABELS[path] for path in lb.PATHS):
            for concurrency in (1, 2):
                row = re.search(rf"^{re.escape(label)} +{concurrency} +\d+ ", out, re.MULTILINE)
                assert row is not None, f"no row for {label} at concurrency {concurrency}"
        for concurrency in (1, 2):
            assert re.search(rf"c={concurrency} +added latency p50 [+-]\d", out)
            assert re.search(rf"c={concurrency} +>= \d+ calls/s", out)

    @pytest.mark.timeout(60)
    def test_workers_mode_prints_both_rows_and_the_ratio(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``--workers 2``: one worker and two, same run, LB CPU per call and the ratio."""
        lb.main(
            [
                *("--workers", "2", "--client", "python", "--seconds", "0.3"),
                *("--warmup", "0", "--repeats", "1", "--concurrency", "2"),
            ]
        )
        out = capsys.readouterr().out
        for workers in (1, 2):
            assert re.search(rf"^{workers} worker\(s\) +2 +\d+ ", out, re.MULTILINE), out
        assert re.search(r"c=2 +throughput \d+\.\d\dx", out)

    @pytest.mark.timeout(60)
    def test_front_end_alone_prints_its_cpu_per_call(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``bench.lb_front``: a tiny run (every answer checked) prints a CPU figure."""
        lb_front.main(["--calls", "40", "--concurrency", "2", "--repeats", "1"])
        out = capsys.readouterr().out
        assert re.search(r"^this checkout +2 +\d+\.\d", out, re.MULTILINE), out

    @pytest.mark.timeout(60)
    def test_tracing_paths(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--tracing adds the LBs tracing sampled out and at 100%, and their cost summary."""
        lb.main(
            [
                *("--client", "python", "--seconds", "0.3", "--warmup", "0.1"),
                *("--repeats", "1", "--concurrency", "1", "--tracing"),
            ]
        )
        out = capsys.readouterr().out
        for path in lb.TRACING_PATHS:
            assert re.search(rf"^{re.escape(lb.LABELS[path])} +1 +\d+ ", out, re.MULTILINE)
            assert re.search(rf"c=1 +{re.escape(lb.LABELS[path])} +LB CPU \d+ vs \d+", out)

    def test_parses_wrk_output(self) -> None:
        """Counts, duration, percentiles in any unit, and failures come out of wrk's report."""
        load = lb.parse_wrk(WRK_OUTPUT)
        assert load.calls == 3750
        assert load.seconds == pytest.approx(3.0)
        assert load.p50_ms == pytest.approx(0.812)
        assert load.p99_ms == pytest.approx(1200.0)
        assert load.failures == 4 + 3
        assert load.failure == "Non-2xx or 3xx responses: 4"

    def test_rejects_unexpected_wrk_output(self) -> None:
        with pytest.raises(RuntimeError, match="unexpected wrk output"):
            lb.parse_wrk("wrk: connection refused\n")
