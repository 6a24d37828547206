"""Slow: sleeps the seconds given in the body (default 1), then says how long it slept."""

import io
import time


def handler(ctx, data: io.BytesIO = None):
    raw = data.getvalue() if data is not None else b""
    seconds = float(raw or b"1")
    time.sleep(seconds)
    return f"slept {seconds:g}s"
