"""HTTP/1.1 over a function's unix socket: one ``POST /call`` at a time, kept alive.

The runner talks to each hot process over one keep-alive connection. The request is a few
header lines written directly; the response is parsed by httptools (the C parser uvicorn
uses). httpx was measured at 0.4-0.7 ms per call over a unix socket against 0.13 ms for a raw
client (fdk-contract.md §4.2); the runner's budget is 0.3 ms, so it uses the raw client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

import httptools

__all__ = ["BodyTooLargeError", "UdsConnection", "UdsResponse"]

_READ_SIZE = 65536


class BodyTooLargeError(Exception):
    """Raised when a function's response body is larger than the runner accepts."""


@dataclass(slots=True)
class UdsResponse:
    """A function's HTTP response.

    Attributes:
        status: The status code.
        headers: Header names and values, in order.
        body: The whole body.
    """

    status: int = 0
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class _Receiver:
    """httptools callbacks collecting one response."""

    __slots__ = ("body", "complete", "headers", "keep_alive", "limit", "parser", "size")

    def __init__(self, limit: int | None) -> None:
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.complete = False
        self.keep_alive = False
        self.parser: httptools.HttpResponseParser | None = None

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        if self.limit is not None and self.size > self.limit:
            raise BodyTooLargeError(f"function response body larger than {self.limit} bytes")
        self.body.append(body)

    def on_message_complete(self) -> None:
        # Asked here: once the message is done, the parser forgets it.
        assert self.parser is not None
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True


class UdsConnection:
    """One HTTP/1.1 connection to a function process's socket.

    Args:
        reader: The connection's reader.
        writer: The connection's writer.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self.reusable = True

    @classmethod
    async def open(cls, path: str) -> UdsConnection:
        """Connect to the unix socket at ``path``.

        Raises:
            OSError: If nothing listens there.
        """
        reader, writer = await asyncio.open_unix_connection(path)
        return cls(reader, writer)

    async def post(
        self,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        max_body: int | None = None,
    ) -> UdsResponse:
        """Send ``POST target`` and return the whole response.

        After an error the connection is not reusable; close it.

        Raises:
            BodyTooLargeError: If the response body exceeds ``max_body`` bytes.
            ConnectionError: If the connection broke or the response is not HTTP.
        """
        self.reusable = False
        lines = [f"POST {target} HTTP/1.1\r\nHost: localhost\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers]
        lines.append(f"Content-Length: {len(body)}\r\n\r\n")
        self._writer.write("".join(lines).encode("latin-1") + body)
        receiver = _Receiver(max_body)
        parser = receiver.parser = httptools.HttpResponseParser(receiver)
        while not receiver.complete:
            data = await self._reader.read(_READ_SIZE)
            if not data:
                raise ConnectionError("the function closed the connection before its response")
            try:
                parser.feed_data(data)
            except httptools.HttpParserCallbackError as exc:
                # httptools wraps what a callback raised (here: the body limit).
                if isinstance(exc.__context__, BodyTooLargeError):
                    raise exc.__context__ from None
                raise
            except httptools.HttpParserError as exc:
                raise ConnectionError(f"the function's response is not valid HTTP: {exc}") from exc
        self.reusable = receiver.keep_alive
        return UdsResponse(parser.get_status_code(), receiver.headers, b"".join(receiver.body))

    def close(self) -> None:
        """Close the connection (at once; nothing is in flight when it is called)."""
        self._writer.close()
