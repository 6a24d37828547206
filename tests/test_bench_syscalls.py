"""System calls per call in the benchmarks: strace's summary is read, a missing strace is said."""

from __future__ import annotations

import re

import pytest
from bench import _syscalls, engage

#: ``strace -c`` output as strace 6 writes it (the errors column is empty on most rows).
SUMMARY = """\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 25.78    0.000148           4        34        13 openat
 21.25    0.000122           4        30           sendto
 16.55    0.000095           4        23           write
  0.00    0.000000           0         1           restart_syscall
------ ----------- ----------- --------- --------- ----------------
100.00    0.000365           5        88        13 total
"""


class TestSyscalls:
    def test_parses_strace_summary(self) -> None:
        """Each row's calls column, by name; the header, rules and total are skipped."""
        counts = _syscalls.parse_summary(SUMMARY)
        assert counts == {"openat": 34, "sendto": 30, "write": 23, "restart_syscall": 1}

    def test_per_call_figures(self) -> None:
        """Writes are sendto + write (+ sendmsg, writev), divided by the calls made."""
        count = _syscalls.SyscallCount(_syscalls.parse_summary(SUMMARY), calls=10)
        assert count.writes == 53
        assert count.per_call() == pytest.approx(5.3)
        assert count.per_call("sendto") == pytest.approx(3.0)
        assert count.total_per_call == pytest.approx(8.8)

    def test_missing_strace_is_said(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without strace on PATH, the reason is a sentence, and no figure is made up."""
        monkeypatch.setenv("PATH", "/nonexistent")
        reason = _syscalls.strace_available()
        assert reason is not None
        assert "strace is not installed" in reason

    @pytest.mark.timeout(60)
    def test_engage_prints_writes_per_call(self, capsys: pytest.CaptureFixture[str]) -> None:
        """A tiny traced run prints writes per call for each side, or why it cannot."""
        engage.main(
            [
                "--calls", "20", "--warmup", "10", "--repeats", "1", "--concurrency", "1",
                "--cases", "GrpcRunner", "--strace", "20",
            ]
        )  # fmt: skip
        out = capsys.readouterr().out
        if _syscalls.strace_available() is not None:
            assert "system calls per call are not measured" in out or "cannot" in out
            return
        traced = out[out.index("system calls per call (strace") :]
        row = re.search(
            r"^GrpcRunner\.try_exec +1 +([\d.]+) +([\d.]+) +[\d.]+ +([\d.]+)", traced, re.M
        )
        assert row is not None, out
        # Corked writes: one socket write per call on each side at concurrency 1.
        assert float(row.group(1)) <= 2
        assert float(row.group(3)) <= 2
