"""Hungry: holds the megabytes given in the body (default 64) for the call, touching each page."""

import io


def handler(ctx, data: io.BytesIO = None):
    raw = data.getvalue() if data is not None else b""
    megabytes = int(raw or b"64")
    block = bytearray(b"x" * (megabytes * 1024 * 1024))
    return f"held {len(block) // (1024 * 1024)} MB"
