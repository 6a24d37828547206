"""A minimal HTTP/1.1 client for load: one request per connection, status line parsed.

httpx costs tens of milliseconds per request once hundreds are in flight in one process,
which hid the load balancer's figures; this client costs well under one.
"""

from __future__ import annotations

import asyncio

__all__ = ["post"]


async def post(host: str, port: int, path: str, body: bytes) -> int:
    """POST ``body`` to ``path``; return the response's status code.

    Raises:
        OSError: If the connection fails or closes before a status line.
    """
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + body
        )
        status = await reader.readline()
        if not status.startswith(b"HTTP/1.1 "):
            raise ConnectionError(f"no status line: {status!r}")
        await reader.read()  # the rest, until the server closes
        return int(status.split()[1])
    finally:
        writer.close()
