"""Fail: raises, as a function with a bug does (502, the process is kept); the body
``exit`` makes the process exit mid-call instead (502, the process is replaced)."""

import io
import os


def handler(ctx, data: io.BytesIO = None):
    raw = data.getvalue() if data is not None else b""
    if raw == b"exit":
        os._exit(3)
    raise RuntimeError("this function always fails")
