"""The gRPC stack benchmark runs every stack and prints its table (speed is not asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from bench import grpc_stacks

ROOT = Path(__file__).resolve().parents[1]


class TestGrpcStacksBenchmark:
    def test_every_stack_gets_a_row_with_ratios(self) -> None:
        """A tiny run of every stack prints a row per stack and concurrency, with ratios."""
        # Its own process: the benchmark loads generated stubs of runner.proto, which would
        # clash in the descriptor pool with runnerpool.rpc's if a test had imported it.
        argv = [sys.executable, "-m", "bench.grpc_stacks", "--calls", "20", "--repeats", "1"]
        argv += ["--warmup", "8", "--concurrency", "1", "4", "--stacks", *grpc_stacks.STACKS]
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        for stack in grpc_stacks.STACKS:
            for concurrency in (1, 4):
                row = re.search(
                    rf"^{re.escape(stack)} +{concurrency} +\d+ .* (\d+\.\d\d) +(\d+\.\d\d) +"
                    r"(\d+\.\d\d)$",
                    done.stdout,
                    re.MULTILINE,
                )
                assert row is not None, f"no row for {stack} c={concurrency}:\n{done.stdout}"
                if stack == grpc_stacks.BASELINE:
                    assert row.groups() == ("1.00", "1.00", "1.00")

    def test_tuned_options_differ_only_in_the_target(self) -> None:
        """The latency stack is the tuned one with the other optimization target."""
        tuned = dict(grpc_stacks.grpc_options("grpc.aio+tuned"))
        latency = dict(grpc_stacks.grpc_options("grpc.aio+latency"))
        assert grpc_stacks.grpc_options("grpc.aio") == []
        assert tuned.pop("grpc.optimization_target") == "throughput"
        assert latency.pop("grpc.optimization_target") == "latency"
        assert tuned == latency

    def test_grpc_env_must_name_a_grpc_variable(self, capsys: pytest.CaptureFixture[str]) -> None:
        """--grpc-env rejects an assignment that is not GRPC_NAME=VALUE, saying which."""
        with pytest.raises(SystemExit):
            grpc_stacks.main(["--grpc-env", "PATH=/tmp"])
        assert "GRPC_NAME=VALUE, not 'PATH=/tmp'" in capsys.readouterr().err
