"""Function output benchmark: what one line a function writes costs the runner, by destination.

One line is one ``OutputSink.write`` of a 60-byte line during a call, as the runner's pipe
reader makes it: the call's own log, the log book (``StreamLogs``), and, depending on the row,
the runner's log and the app's syslog. The baseline row is what runs with the function log
off (``--no-function-logs``, no ``syslog_url``); the others add the runner's log as text or
JSON lines (written to ``/dev/null`` through the CLI's own logging configuration) and the
syslog queue (a UDP listener on 127.0.0.1 receives the lines). The reference row is one INFO
message of the runner's own, through the same configuration: the cost of stdlib logging. Each
row runs ``--lines`` lines, the rows interleaved over ``--rounds`` rounds; the best round is
shown, in microseconds per line and as a ratio to the baseline of the same run. The token
bucket is set wide enough that no line is dropped.

Run: ``python -m bench.function_output``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from runnerpool._logging import configure_logging
from runnerpool._model import Call
from runnerpool._syslog import SyslogShipper
from runnerpool.fdk._function_log import FUNCTION_LOGGER, FunctionLog
from runnerpool.fdk._log_book import LogBook
from runnerpool.fdk._output import OutputSink

ROWS = (
    "baseline: call log + book",
    "+ runner log, text",
    "+ runner log, json",
    "+ syslog, udp",
    "reference: one log record",
)
LINE = b"2026-12-02 13:31:40 INFO handler: processed order 1234 in 5 ms\n"


class _CallLog:
    def write(self, data: bytes) -> int:
        return len(data)


class _Received(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.count = 0

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.count += 1


async def _row(row: str, lines: int, syslog_url: str) -> float:
    """Return the seconds per line of one row."""
    configure_logging("info", "json" if "json" in row else "text")
    if row.startswith("reference"):
        # What any INFO message of the runner costs: a stdlib record, formatted and written.
        reference = logging.getLogger("runnerpool.bench")
        start = time.perf_counter()
        for _ in range(lines):
            reference.info("%s", "processed order 1234 in 5 ms")
        return (time.perf_counter() - start) / lines
    if row.startswith("baseline") or "syslog" in row:
        logging.getLogger(FUNCTION_LOGGER).setLevel(logging.CRITICAL + 1)
    shipper = SyslogShipper(max_queued_bytes=1 << 30)
    function_log = FunctionLog(shipper, rate=1e12, burst=10**9)
    model = Call(
        id="01CALL", app_id="app", fn_id="fn", syslog_url=syslog_url if "syslog" in row else ""
    )
    sink = OutputSink(LogBook(), "app", "fn", "fdk-1", function_log.process(model))
    sink.begin("01CALL", _CallLog())
    start = time.perf_counter()
    for _ in range(lines):
        sink.write(LINE, "stdout")
    elapsed = time.perf_counter() - start
    sink.end()
    await function_log.aclose()
    return elapsed / lines


async def _run(lines: int, rounds: int, null: TextIO) -> dict[str, float]:
    received = _Received()
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: received, local_addr=("127.0.0.1", 0)
    )
    url = f"udp://127.0.0.1:{transport.get_extra_info('sockname')[1]}"
    best = dict.fromkeys(ROWS, float("inf"))
    saved = sys.stderr
    try:
        sys.stderr = null
        for _ in range(rounds):
            for row in ROWS:
                best[row] = min(best[row], await _row(row, lines, url))
    finally:
        sys.stderr = saved
        logging.getLogger(FUNCTION_LOGGER).setLevel(logging.NOTSET)
        transport.close()
    return best


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20_000, help="Lines per row and round.")
    parser.add_argument("--rounds", type=int, default=5, help="Rounds; the best is shown.")
    args = parser.parse_args(argv)
    with open(os.devnull, "w") as null:
        best = asyncio.run(_run(args.lines, args.rounds, null))
    baseline = best[ROWS[0]]
    print(f"{'destination':<28} {'us/line':>8} {'ratio':>7}")
    for row in ROWS:
        print(f"{row:<28} {best[row] * 1e6:>8.2f} {best[row] / baseline:>6.2f}x")


if __name__ == "__main__":
    main()
