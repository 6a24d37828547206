"""Sleep: the replay benchmark's function. Sleeps the seconds in the body, says what it saw.

Answers JSON: ``process`` (a token of this process), ``call`` (how many calls this process
has served, this one included), ``start`` and ``end`` (wall-clock seconds around the sleep)
and ``age`` (seconds since the process was spawned, at the call's start: for a process's
first call, the cold start that call waited, from the kernel's own start time).
"""

from __future__ import annotations

import io
import json
import os
import time
import uuid

TOKEN = uuid.uuid4().hex
CALLS = 0


def _spawned_since_boot() -> float | None:
    """Seconds from boot to this process's start (``/proc/self/stat`` field 22)."""
    try:
        with open("/proc/self/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


SPAWNED = _spawned_since_boot()


def handler(ctx: object, data: io.BytesIO | None = None) -> str:
    """Sleep the seconds in the body, then answer what this call saw."""
    global CALLS
    CALLS += 1
    start = time.time()
    age = None if SPAWNED is None else time.clock_gettime(time.CLOCK_BOOTTIME) - SPAWNED
    raw = data.getvalue() if data is not None else b""
    time.sleep(float(raw or b"0"))
    return json.dumps(
        {"process": TOKEN, "call": CALLS, "start": start, "end": time.time(), "age": age}
    )
