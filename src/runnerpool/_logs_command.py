"""``runnerpool logs``: read a runner's ``StreamLogs`` and print each line of function output."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from datetime import UTC, datetime

from grpclib.client import Channel

from .rpc.wire import RunnerProtocolStub, pb, split_address

__all__ = ["format_lines", "print_logs"]

#: Without ``--follow``, how long to wait for a runner that does not end the stream itself
#: (Fn's runners ignore the ``follow`` config), in seconds.
_QUIET_END = 5.0
_STDERR = pb.LogResponseMsg.Container.Request.Line.STDERR


def format_lines(message: pb.LogResponseMsg) -> list[str]:
    """Return one printable line per line of function output in a ``StreamLogs`` message."""
    printed = []
    for container in message.data:
        for request in container.data:
            for line in request.data:
                when = datetime.fromtimestamp(line.timestamp / 1000, UTC)
                stream = "stderr" if line.source == _STDERR else "stdout"
                text = line.data.decode(errors="replace").rstrip("\r\n")
                printed.append(
                    f"{when.isoformat(timespec='milliseconds').replace('+00:00', 'Z')} "
                    f"{container.applicationId} {container.functionId} {request.requestId} "
                    f"{stream}: {text}"
                )
    return printed


async def print_logs(
    address: str,
    *,
    follow: bool,
    ssl: ssl.SSLContext | None = None,
    echo: Callable[[str], None] = print,
) -> None:
    """Print the function output a runner holds; with ``follow``, then new output, forever.

    Raises:
        ValueError: If ``address`` is not ``host:port``.
        grpclib.exceptions.GRPCError: If the runner refuses (no log streamer, for one).
        OSError: If the runner cannot be reached.
    """
    host, port = split_address(address)
    channel = Channel(host, port, ssl=ssl)
    try:
        async with RunnerProtocolStub(channel).StreamLogs.open() as stream:
            config = {"follow": "true" if follow else "false"}
            await stream.send_message(pb.LogRequestMsg(start=pb.LogRequestMsg.Start(config=config)))
            while True:
                try:
                    async with asyncio.timeout(None if follow else _QUIET_END):
                        message = await stream.recv_message()
                except TimeoutError:
                    message = None
                if message is None:
                    # The runner ended the stream (or, without --follow, went quiet): done.
                    await stream.cancel()
                    return
                for line in format_lines(message):
                    echo(line)
                await stream.send_message(pb.LogRequestMsg(ack=pb.LogRequestMsg.Ack()))
    finally:
        channel.close()
