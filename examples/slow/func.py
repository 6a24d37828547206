"""Slow: sleeps the seconds given in the body (default 1), then says how long it slept."""

from __future__ import annotations

import io
import time

from fdk import context


def handler(ctx: context.InvokeContext, data: io.BytesIO | None = None) -> str:
    """Sleep, then answer ``slept <seconds>s``."""
    raw = data.getvalue() if data is not None else b""
    seconds = float(raw or b"1")
    time.sleep(seconds)
    return f"slept {seconds:g}s"
