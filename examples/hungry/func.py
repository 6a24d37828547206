"""Hungry: holds the megabytes given in the body (default 64) for the call, touching each page."""

from __future__ import annotations

import io

from fdk import context


def handler(ctx: context.InvokeContext, data: io.BytesIO | None = None) -> str:
    """Fill a block of the requested size, then answer ``held <MB> MB``."""
    raw = data.getvalue() if data is not None else b""
    megabytes = int(raw or b"64")
    block = bytearray(b"x" * (megabytes * 1024 * 1024))
    return f"held {len(block) // (1024 * 1024)} MB"
