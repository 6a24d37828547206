"""Fail: raises, as a function with a bug does (502, and the process is kept).

The body ``exit`` makes the process exit mid-call instead (502, and the process is replaced).
"""

from __future__ import annotations

import io
import os

from fdk import context


def handler(ctx: context.InvokeContext, data: io.BytesIO | None = None) -> str:
    """Raise, or exit with code 3."""
    raw = data.getvalue() if data is not None else b""
    if raw == b"exit":
        os._exit(3)
    raise RuntimeError("this function always fails")
