"""The private parts of grpclib the runner channel relies on, in one place.

:class:`~runnerpool.rpc._channel.RunnerChannel` watches its connection (see that module) by
replacing grpclib's HTTP/2 protocol and refusing grpclib's silent reconnect. grpclib offers no
public hook for either, so this module reaches into it, and nothing else does:

* ``Channel._protocol_factory()``, which grpclib's ``_create_connection()`` passes to
  ``loop.create_connection``, and ``Channel.__connect__()``, which every request awaits for
  its connection; ``Channel._protocol``, ``_config`` and ``_h2_config``;
* ``H2Protocol.connection`` (grpclib's ``Connection``: ``write_ready``, ``flush()`` and its h2
  connection ``_connection``) and ``H2Protocol.processor.close(reason)``;
* ``Server._protocol_factory()``, which the runner's corked server wraps (``rpc/_cork.py``);
* a client stream's protocol-level stream ``Stream._stream`` (its ``id``, ``connection`` and
  ``_h2_connection``), whose send window decides whether a body is sent inline.

``pyproject.toml`` bounds grpclib below the next minor version, and
``tests/rpc/test_grpclib_private.py`` checks :func:`check` on the installed version: a new
grpclib that moved any of these fails that test rather than the keepalive at run time.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import grpclib.client
import grpclib.server
from grpclib.client import Channel, Handler
from grpclib.protocol import Connection, H2Protocol
from grpclib.protocol import Stream as ProtocolStream
from grpclib.server import Server

if TYPE_CHECKING:
    from grpclib.client import Stream
    from grpclib.config import Configuration
    from h2.config import H2Configuration

__all__ = [
    "HookedChannel",
    "HookedServer",
    "check",
    "end_streams",
    "flush",
    "h2_connection",
    "send_window",
    "write_ready",
]


class HookedChannel(Channel):
    """A grpclib channel whose protocol and connect are the subclass's hooks.

    Subclasses override :meth:`make_protocol` (build the HTTP/2 protocol of a new
    connection) and :meth:`before_connect` (raise to refuse a connect), and call
    :meth:`open_connection` instead of grpclib's ``__connect__``.
    """

    def make_protocol(
        self, handler: Handler, config: Configuration, h2_config: H2Configuration
    ) -> H2Protocol:
        """Return the protocol of a new connection (grpclib's by default)."""
        return H2Protocol(handler, config, h2_config)

    def before_connect(self) -> None:
        """Raise to refuse the connect grpclib is about to make (or reuse); nothing by default."""

    async def open_connection(self) -> H2Protocol:
        """Return the connection, made now if there is none (grpclib's ``__connect__``)."""
        return await self.__connect__()

    def current_protocol(self) -> H2Protocol | None:
        """Return the protocol of the channel's connection, if it has one."""
        protocol: H2Protocol | None = getattr(self, "_protocol", None)
        return protocol

    def drop_connection(self) -> None:
        """Forget the connection: grpclib's ``close()``, not any override of it."""
        Channel.close(self)

    # grpclib's names, which it calls itself: kept to these two lines.
    def _protocol_factory(self) -> H2Protocol:
        return self.make_protocol(Handler(), self._config, self._h2_config)

    async def __connect__(self) -> H2Protocol:
        self.before_connect()
        return await super().__connect__()


class HookedServer(Server):
    """A grpclib server whose connections' protocols are the subclass's hook.

    Subclasses override :meth:`wrap_protocol`, given the protocol grpclib made (its handler is
    already registered with the server, for closing and draining).
    """

    def wrap_protocol(self, protocol: H2Protocol) -> H2Protocol:
        """Return the protocol to use for a new connection (grpclib's by default)."""
        return protocol

    # grpclib's name, which it passes to loop.create_server itself.
    def _protocol_factory(self) -> H2Protocol:
        return self.wrap_protocol(super()._protocol_factory())


def send_window(stream: Stream[Any, Any]) -> int | None:
    """Return the bytes a client stream may send now without waiting, or ``None`` if it may not.

    ``None`` when the stream is not open yet or the connection's send buffer is full (a send
    would wait for it); otherwise the peer's flow-control window for the stream (the smaller of
    the stream's and the connection's), as h2 tracks it.
    """
    protocol_stream: ProtocolStream | None = getattr(stream, "_stream", None)
    if protocol_stream is None or protocol_stream.id is None:
        return None
    if not protocol_stream.connection.write_ready.is_set():
        return None
    window: int = protocol_stream._h2_connection.local_flow_control_window(protocol_stream.id)
    return window


def h2_connection(protocol: H2Protocol) -> Any | None:
    """Return the h2 connection under grpclib's protocol, or ``None`` before it is made."""
    return getattr(getattr(protocol, "connection", None), "_connection", None)


def write_ready(protocol: H2Protocol) -> Any:
    """Return the event grpclib sets while the connection's send buffer takes writes."""
    return protocol.connection.write_ready


def flush(protocol: H2Protocol) -> None:
    """Send what the h2 connection has buffered (after a frame written to it directly)."""
    protocol.connection.flush()


def end_streams(protocol: H2Protocol, reason: str) -> None:
    """End every stream of the connection with ``StreamTerminatedError(reason)``."""
    processor = getattr(protocol, "processor", None)
    if processor is not None:
        processor.close(reason)


def check() -> list[str]:
    """Return what of the private API above the installed grpclib lacks (empty: all there)."""
    problems = []
    # The whole module: Stream.send_request awaits the channel's __connect__().
    client_source = inspect.getsource(grpclib.client)
    for needed in (
        "def _protocol_factory(self)",
        "async def __connect__(self)",
        "self._protocol_factory",
        "self._channel.__connect__()",
        "self._config =",
        "self._h2_config =",
        "self._protocol =",
    ):
        if needed not in client_source:
            problems.append(f"grpclib.client no longer has {needed!r}")
    if list(inspect.signature(H2Protocol).parameters)[:3] != ["handler", "config", "h2_config"]:
        problems.append("H2Protocol(handler, config, h2_config) changed")
    connection_source = inspect.getsource(Connection)
    for needed in ("self._connection =", "self.write_ready =", "def flush(self)"):
        if needed not in connection_source:
            problems.append(f"grpclib.protocol.Connection no longer has {needed!r}")
    if "def _protocol_factory(self)" not in inspect.getsource(grpclib.server.Server):
        problems.append("grpclib.server.Server no longer has '_protocol_factory'")
    if "self._stream =" not in client_source:
        problems.append("grpclib.client.Stream no longer sets 'self._stream ='")
    stream_source = inspect.getsource(ProtocolStream)
    for needed in ("self._h2_connection =", "self.connection =", "self.id ="):
        if needed not in stream_source:
            problems.append(f"grpclib.protocol.Stream no longer sets {needed!r}")
    protocol_source = inspect.getsource(H2Protocol)
    for needed in ("self.connection =", "self.processor ="):
        if needed not in protocol_source:
            problems.append(f"grpclib.protocol.H2Protocol no longer sets {needed!r}")
    return problems
