"""One socket write per event-loop turn for grpclib's HTTP/2 connections.

grpclib hands every h2 event's bytes to ``transport.write`` at once: the headers of a
response, each message and the trailers are one ``sendto`` each, and on an idle socket
asyncio sends each immediately. A runner answering one Engage call wrote five times, where
Fn's Go runner writes about 2.4 (issue 16). :class:`CorkedTransport` sits between grpclib and
asyncio's transport: writes made while the event loop runs its ready callbacks are kept, and
joined into one write by a callback scheduled with ``loop.call_soon``, which runs before the
loop next waits for I/O. Bytes reach the socket in the order they were written, one turn of
the loop later (microseconds), and with many streams on a connection the frames of many of
them leave in the same write.

A turn can be long: with 64 calls on a connection, one turn runs dozens of handlers. Holding
all their frames to its end made the two processes take turns (one works on a batch while the
other waits for it) instead of working at once on their two cores, and plain grpclib reached
up to twice the corked throughput (docs/benchmarks.md, "Wire cost per call"). So a write also
sends what is held once the oldest held bytes have waited :attr:`CorkedTransport.max_hold`
seconds, or once :attr:`CorkedTransport.max_bytes` are held: the peer never waits more than
about that for bytes already made, and a short turn (one call alone) still leaves in one write.

:class:`CorkedH2Protocol` is grpclib's protocol with the transport wrapped; :class:`CorkedServer`
is grpclib's server making those protocols (through the server's protocol factory, private in
grpclib and reached in ``_grpclib_private.py`` only).
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any

from grpclib.protocol import H2Protocol

from ._grpclib_private import HookedServer

__all__ = ["CorkedH2Protocol", "CorkedServer", "CorkedTransport"]


class CorkedTransport(asyncio.Transport):
    """An asyncio transport whose writes within one loop turn leave as one write.

    Args:
        transport: The socket transport to write to.
        loop: The loop the transport runs on.

    ``close()`` sends what is held first; ``abort()`` drops it, as asyncio's own does.

    Attributes:
        writes: Writes made to the socket transport so far (each usually one ``sendto``).
        max_hold: Seconds the oldest held bytes may wait in a long turn: a write made later in
            the same turn sends everything held at once (class default, settable per object).
        max_bytes: Held bytes that make a write send everything held at once.
    """

    #: 1 ms: a few calls' work on either side, so a turn of 16 or 64 calls leaves in a few
    #: writes (about one per four calls; the peer starts on the first while this side makes the
    #: rest), and one call alone, whose frames are made within tens of µs, leaves in one.
    #: Measured against 0.2, 0.5 and 2 ms and the whole turn ("Wire cost per call" in
    #: docs/benchmarks.md): 0.2 ms wrote about once per call, the whole turn lost half the
    #: throughput, 0.5 to 2 ms were alike.
    max_hold: float = 1e-3
    #: 16 KiB: more than a turn of small calls' frames, so it rarely decides; it keeps a large
    #: body from being copied into one ever larger join.
    max_bytes: int = 16384

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport = transport
        self._loop = loop
        self._held: list[bytes | bytearray | memoryview] = []
        self._held_bytes = 0
        self._held_since = 0.0
        self._flush_scheduled = False
        self.writes = 0

    @property
    def wrapped(self) -> asyncio.Transport:
        """The socket transport written to."""
        return self._transport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Hold ``data`` until the end of this loop turn, or send all held if held long or much."""
        if not data:
            return  # grpclib writes data_to_send() even when h2 had nothing to send
        held = self._held
        held.append(data)
        self._held_bytes += len(data)
        if len(held) == 1:
            self._held_since = self._loop.time()
        elif (
            self._held_bytes >= self.max_bytes
            or self._loop.time() - self._held_since >= self.max_hold
        ):
            # A long turn: the peer has waited long enough for the first of these bytes.
            # The scheduled flush stays scheduled and sends whatever this turn adds after.
            self._send_held()
            return
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def writelines(self, list_of_data: Any) -> None:
        """Hold each piece until the end of this loop turn."""
        for data in list_of_data:
            self.write(data)

    def flush(self) -> None:
        """Write what is held now, in one write."""
        self._flush_scheduled = False
        self._send_held()

    def _send_held(self) -> None:
        held = self._held
        if not held:
            return
        self._held = []
        self._held_bytes = 0
        if self._transport.is_closing():
            return  # closed or lost meanwhile: the bytes have nowhere to go
        self.writes += 1
        self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def get_write_buffer_size(self) -> int:
        """Bytes held here and in the socket transport's buffer."""
        return self._held_bytes + self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The socket transport's flow-control limits."""
        return self._transport.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        """Set the socket transport's flow-control limits."""
        self._transport.set_write_buffer_limits(high, low)

    def can_write_eof(self) -> bool:
        """Whether the socket transport can half-close."""
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        """Send what is held, then half-close."""
        self.flush()
        self._transport.write_eof()

    def is_closing(self) -> bool:
        """Whether the socket transport is closing or closed."""
        return self._transport.is_closing()

    def close(self) -> None:
        """Send what is held, then close the socket transport (it sends its buffer first)."""
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        """Drop what is held and abort the socket transport."""
        self._held = []
        self._held_bytes = 0
        self._transport.abort()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """The socket transport's extra information (``socket``, ``peername``, ...)."""
        return self._transport.get_extra_info(name, default)

    def is_reading(self) -> bool:
        """Whether the socket transport reads."""
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        """Pause the socket transport's reading."""
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        """Resume the socket transport's reading."""
        self._transport.resume_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Set the socket transport's protocol."""
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The socket transport's protocol."""
        return self._transport.get_protocol()


class CorkedH2Protocol(H2Protocol):
    """grpclib's HTTP/2 protocol writing through a :class:`CorkedTransport`.

    Attributes:
        corked: The connection's corked transport, once connected.
    """

    corked: CorkedTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start HTTP/2 on the connection, with writes held to the end of each loop turn."""
        corked = CorkedTransport(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
        self.corked = corked
        super().connection_made(corked)


class CorkedServer(HookedServer):
    """grpclib's server, with every connection's writes corked (:class:`CorkedH2Protocol`).

    Attributes:
        connections: The protocols of its connections (while they are referenced).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: weakref.WeakSet[CorkedH2Protocol] = weakref.WeakSet()

    def wrap_protocol(self, protocol: H2Protocol) -> H2Protocol:
        """Return a corked protocol with the handler grpclib made (and registered) for it."""
        corked = CorkedH2Protocol(protocol.handler, protocol.config, protocol.h2_config)
        self.connections.add(corked)
        return corked
