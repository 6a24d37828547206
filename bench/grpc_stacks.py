"""gRPC stack benchmark: one runner-protocol call over ``grpc.aio`` against ``grpclib``.

One call is the ``Engage`` exchange of Fn's runner protocol as runnerpool makes it: the client
opens the bidi stream and sends a ``TryCall`` (a ~400-byte Fn call JSON), a 5-byte body frame
and an empty frame with ``eof``; the server reads those, parses the call JSON for its id, sends
``CallResultStart`` (200, one header), one body frame and ``CallFinished``, and returns OK. The
client reads every message until the stream ends and checks the last one.

Each stack runs its own client and server: grpcio's ``grpc.aio`` on both sides (with default or
tuned options, see :data:`STACKS`), or ``grpclib`` on both sides (plain, corked, corked on
uvloop, corked with the server on jh2). Every row also shows its ratios against ``grpclib+cork``
at the same concurrency in the same run. The server runs in a separate process (this module with
``--serve``) bound to 127.0.0.1 port 0; it reports its port on stdout and, when asked on stdin,
its ``time.process_time()``. The client runs in this process, over one channel (one HTTP/2
connection) per stack, with 1, 16 and 64 asyncio tasks doing calls back to back.

For each cell: calls per second, p50 and p99 latency of a whole call (open to stream end),
client CPU per call (``time.process_time()`` of this process, so grpcio's own threads count)
and server CPU per call (the same in the server process). Every stack is warmed up first;
every cell runs a fixed number of calls, the cells are interleaved stack by stack within each
of the repetitions so machine noise hits both alike, and the row shown is the repetition with
the best throughput. Stubs are generated at start from ``src/runnerpool/rpc/_proto`` with
``grpc_tools.protoc`` into a temporary directory. Loopback only; the server processes are
killed at the end, also on error.

Run: ``python -m bench.grpc_stacks`` (``--help`` for the knobs; ``--stacks`` picks from
:data:`STACKS`; ``--grpc-env GRPC_POLL_STRATEGY=poll ...`` sets grpc core's environment for
the client and the servers; ``--uvloop`` runs every client and server on uvloop). uvloop and
jh2 come from the ``bench`` dependency group.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import json
import math
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "src" / "runnerpool" / "rpc" / "_proto"
#: ``grpclib+cork``: grpclib with runnerpool's corked writes on both sides (rpc/_cork.py,
#: issue 16): one socket write per event-loop turn instead of one per HTTP/2 frame group, or
#: sooner in a long turn. ``grpclib+cork+turn``: the cork as first built, holding every write
#: to the end of its turn however long the turn (``max_hold`` and ``max_bytes`` infinite).
#: ``grpc.aio+tuned``: grpc.aio with :data:`TUNED_OPTIONS` on both sides; ``grpc.aio+latency``
#: the same with ``grpc.optimization_target`` "latency"; ``grpc.aio+4ch``: the tuned options
#: over four channels, each its own connection, calls spread round robin (as a load balancer
#: holding several connections to one runner would). ``grpclib+cork+uvloop``: the corked stack
#: on uvloop, the client on a loop of its own in a thread, the server process on uvloop.
#: ``grpclib+cork+jh2``: the corked stack whose server runs grpclib on ``jh2`` (h2's API with a
#: compiled HPACK codec) in place of h2; its client is the plain corked one.
STACKS = (
    "grpc.aio",
    "grpc.aio+tuned",
    "grpc.aio+latency",
    "grpc.aio+4ch",
    "grpclib",
    "grpclib+cork",
    "grpclib+cork+turn",
    "grpclib+cork+uvloop",
    "grpclib+cork+jh2",
)
DEFAULT_STACKS = ("grpc.aio", "grpc.aio+tuned", "grpclib", "grpclib+cork")
#: grpc core options for the tuned grpc.aio stacks, each off a default that costs work per call
#: or per connection: channelz bookkeeping, retry state, BDP pings, the deadline and census
#: filters (minimal stack), and the stream limit (100 by default on the server).
TUNED_OPTIONS: tuple[tuple[str, int | str], ...] = (
    ("grpc.max_concurrent_streams", 1000),
    ("grpc.http2.max_frame_size", 1 << 20),
    ("grpc.http2.bdp_probe", 0),
    ("grpc.enable_retries", 0),
    ("grpc.enable_channelz", 0),
    ("grpc.minimal_stack", 1),
    ("grpc.so_reuseport", 0),
    ("grpc.optimization_target", "throughput"),
)
MULTI_CHANNELS = 4
CALL_ID = "01CALLID0000000000000000"
CALL_JSON = json.dumps(
    {
        "id": CALL_ID,
        "status": "running",
        "image": "img:1",
        "type": "sync",
        "url": "http://lb/invoke/fn1",
        "method": "POST",
        "timeout": 30,
        "idle_timeout": 30,
        "memory": 128,
        "config": {
            "FN_APP_ID": "app1",
            "FN_FN_ID": "fn1",
            "FN_MEMORY": "128",
            "FN_TYPE": "sync",
        },
        "headers": {"Content-Type": ["text/plain"]},
        "completed_at": "0001-01-01T00:00:00.000Z",
        "created_at": "2026-11-27T20:04:45.158Z",
        "started_at": "2026-11-27T20:04:45.158Z",
        "app_id": "app1",
        "app_name": "myapp",
        "trigger_id": "",
        "fn_id": "fn1",
    },
    separators=(",", ":"),
)
CELL_TIMEOUT = 60.0  # seconds; a cell that takes longer is a failure, not a figure
SERVER_START_TIMEOUT = 30.0


# --------------------------------------------------------------------------- stubs


def generate_stubs(out_dir: str) -> None:
    """Generate protobuf, grpcio and grpclib code for runner.proto into ``out_dir``."""
    grpc_tools: Any = importlib.import_module("grpc_tools")  # untyped
    protoc: Any = importlib.import_module("grpc_tools.protoc")

    bin_dir = str(Path(sys.executable).parent)
    plugin = shutil.which(
        "protoc-gen-grpclib_python", path=os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
    )
    if plugin is None:
        raise SystemExit("protoc-gen-grpclib_python not found (is grpclib installed?)")
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-grpclib_python={plugin}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--grpclib_python_out={out_dir}",
        "runner.proto",
    ]
    if protoc.main(args) != 0:
        raise SystemExit("grpc_tools.protoc failed on runner.proto")


@dataclass(frozen=True)
class Stubs:
    """The generated modules, typed loosely: they are imported at run time."""

    pb2: Any  # runner_pb2: messages
    pb2_grpc: Any  # runner_pb2_grpc: grpcio stub and servicer
    grpclib: Any  # runner_grpc: grpclib stub and base


def import_stubs(stub_dir: str) -> Stubs:
    if stub_dir not in sys.path:
        sys.path.insert(0, stub_dir)
    return Stubs(
        pb2=importlib.import_module("runner_pb2"),
        pb2_grpc=importlib.import_module("runner_pb2_grpc"),
        grpclib=importlib.import_module("runner_grpc"),
    )


def client_messages(pb2: Any) -> tuple[Any, Any, Any]:
    return (
        pb2.ClientMsg(
            **{"try": pb2.TryCall(models_call_json=CALL_JSON, slot_hash_id="", extensions={})}
        ),
        pb2.ClientMsg(data=pb2.DataFrame(data=b"hello", eof=False)),
        pb2.ClientMsg(data=pb2.DataFrame(data=b"", eof=True)),
    )


def check_reply(pb2: Any, received: list[Any]) -> None:
    kinds = [m.WhichOneof("body") for m in received]
    if kinds != ["result_start", "data", "finished"]:
        raise RuntimeError(f"unexpected reply: {kinds}")
    if received[1].data.data != b"echo:hello":
        raise RuntimeError(f"unexpected body: {received[1].data.data!r}")
    if not received[2].finished.success or received[2].finished.details != CALL_ID:
        raise RuntimeError(f"unexpected CallFinished: {received[2].finished}")


def new_loop_factory(use_uvloop: bool) -> Callable[[], asyncio.AbstractEventLoop] | None:
    if not use_uvloop:
        return None
    uvloop: Any = importlib.import_module("uvloop")  # optional; only with --uvloop
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


# --------------------------------------------------------------------------- servers


def _runner_replies(pb2: Any, call_id: str, body: bytes) -> tuple[Any, Any, Any]:
    return (
        pb2.RunnerMsg(
            result_start=pb2.CallResultStart(
                http=pb2.HttpRespMeta(
                    status_code=200,
                    headers=[pb2.HttpHeader(key="Content-Type", value="text/plain")],
                )
            )
        ),
        pb2.RunnerMsg(data=pb2.DataFrame(data=b"echo:" + body)),
        pb2.RunnerMsg(finished=pb2.CallFinished(success=True, details=call_id)),
    )


def grpc_options(stack: str) -> list[tuple[str, int | str]]:
    """The grpc core options of a grpc.aio stack (none for the default one)."""
    if stack == "grpc.aio":
        return []
    options = list(TUNED_OPTIONS)
    if stack == "grpc.aio+latency":
        options = [o for o in options if o[0] != "grpc.optimization_target"]
        options.append(("grpc.optimization_target", "latency"))
    return options


def use_jh2() -> None:
    """Make ``import h2`` (grpclib's) load ``jh2``, which keeps h2's module layout."""
    jh2: Any = importlib.import_module("jh2")  # optional; only for grpclib+cork+jh2
    sys.modules["h2"] = jh2
    for name in ("config", "connection", "errors", "events", "exceptions", "settings", "stream"):
        sys.modules[f"h2.{name}"] = importlib.import_module(f"jh2.{name}")


async def serve_grpc_aio(stubs: Stubs, stop: asyncio.Event, stack: str = "grpc.aio") -> None:
    aio: Any = importlib.import_module("grpc.aio")  # grpcio ships no type hints

    pb2 = stubs.pb2

    async def engage(self: Any, request_iterator: Any, context: Any) -> None:
        # The read/write API; an async-generator servicer measured no faster here.
        first = await context.read()
        call_id = json.loads(getattr(first, "try").models_call_json)["id"]
        body = bytearray()
        while True:
            msg = await context.read()
            if msg is aio.EOF:
                break
            body += msg.data.data
            if msg.data.eof:
                break
        for reply in _runner_replies(pb2, call_id, bytes(body)):
            await context.write(reply)

    servicer = type("EngageServicer", (stubs.pb2_grpc.RunnerProtocolServicer,), {"Engage": engage})
    server = aio.server(options=grpc_options(stack))
    stubs.pb2_grpc.add_RunnerProtocolServicer_to_server(servicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    _report(f"PORT {port}")
    await stop.wait()
    await server.stop(grace=1.0)


def _cork_module() -> Any:
    """Load runnerpool's ``rpc/_cork.py`` (and the grpclib shim it imports) alone.

    Importing the ``runnerpool.rpc`` package would load its ``runner.proto`` into the
    descriptor pool, next to this module's stubs, and fail: the two modules are loaded as
    members of a stand-in package whose ``__init__`` is not run.
    """
    name = "_runnerpool_rpc_transport"
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [str(PROTO_DIR.parent)]
        sys.modules[name] = package
    return importlib.import_module(f"{name}._cork")


def cork_limits(stack: str, max_hold_us: float | None) -> dict[str, float]:
    """The corked transport's attributes for ``stack``: ``+turn`` holds to the turn's end."""
    if stack.endswith("+cork+turn"):
        return {"max_hold": math.inf, "max_bytes": math.inf}
    if max_hold_us is not None:
        return {"max_hold": max_hold_us * 1e-6}
    return {}


async def serve_grpclib(stubs: Stubs, stop: asyncio.Event, *, corked: bool = False) -> None:
    from grpclib.const import Status
    from grpclib.exceptions import GRPCError
    from grpclib.server import Server

    CorkedServer = _cork_module().CorkedServer

    pb2 = stubs.pb2

    async def engage(self: Any, stream: Any) -> None:
        first = await stream.recv_message()
        call_id = json.loads(getattr(first, "try").models_call_json)["id"]
        body = bytearray()
        while True:
            msg = await stream.recv_message()
            if msg is None:
                break
            body += msg.data.data
            if msg.data.eof:
                break
        for reply in _runner_replies(pb2, call_id, bytes(body)):
            await stream.send_message(reply)

    async def unimplemented(self: Any, stream: Any) -> None:
        raise GRPCError(Status.UNIMPLEMENTED)

    base = stubs.grpclib.RunnerProtocolBase
    methods = {name: unimplemented for name in base.__abstractmethods__}
    methods["Engage"] = engage
    handler = type("EngageHandler", (base,), methods)()
    if corked:
        corked_server = CorkedServer([handler])
        server = corked_server

        def writes() -> int:
            return sum(p.corked.writes for p in corked_server.connections if p.corked)

        global _socket_writes
        _socket_writes = writes
    else:
        server = Server([handler])
    # proto must say TCP: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP,
    # and without it Nagle plus delayed ACKs add ~40 ms to every call.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    await server.start(sock=sock)
    _report(f"PORT {sock.getsockname()[1]}")
    await stop.wait()
    server.close()
    await server.wait_closed()


#: The server process's corked socket writes so far (-1: not corked, not counted).
_socket_writes: Callable[[], int] = lambda: -1  # noqa: E731


def _report(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _command_thread(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Answer ``cpu`` with this process's CPU seconds; stop the server on ``quit`` or EOF."""
    for line in sys.stdin:
        command = line.strip()
        if command == "cpu":
            _report(f"CPU {time.process_time():.9f} {_socket_writes()}")
        elif command == "quit":
            break
    loop.call_soon_threadsafe(stop.set)


def serve(stack: str, stub_dir: str, use_uvloop: bool, max_hold_us: float | None = None) -> None:
    """The server process: run ``stack``'s server until stdin says quit or closes."""
    if stack.endswith("+jh2"):
        use_jh2()
    if stack.startswith("grpclib+cork"):  # this process serves one stack: set the class's
        for name, value in cork_limits(stack, max_hold_us).items():
            setattr(_cork_module().CorkedTransport, name, value)
    stubs = import_stubs(stub_dir)

    async def main() -> None:
        stop = asyncio.Event()
        threading.Thread(
            target=_command_thread, args=(asyncio.get_running_loop(), stop), daemon=True
        ).start()
        if stack.startswith("grpc.aio"):
            await serve_grpc_aio(stubs, stop, stack)
        else:
            await serve_grpclib(stubs, stop, corked=stack.startswith("grpclib+cork"))

    uvloop_here = use_uvloop or stack.endswith("+uvloop")
    with asyncio.Runner(loop_factory=new_loop_factory(uvloop_here)) as runner:
        runner.run(main())


class ServerProcess:
    """A server child process and its stdin/stdout command channel."""

    def __init__(
        self, stack: str, stub_dir: str, use_uvloop: bool, max_hold_us: float | None = None
    ) -> None:
        argv = [sys.executable, "-m", "bench.grpc_stacks", "--serve", stack, "--stubs", stub_dir]
        if use_uvloop:
            argv.append("--uvloop")
        if max_hold_us is not None:
            argv += ["--cork-max-hold-us", str(max_hold_us)]
        self.stack = stack
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        try:
            self.port = int(self._expect("PORT", SERVER_START_TIMEOUT))
        except BaseException:
            self.close()
            raise

    def _expect(self, tag: str, timeout: float) -> str:
        stdout: IO[str] | None = self.proc.stdout
        assert stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout)
        if not result or not result[0].startswith(tag + " "):
            got = result[0].strip() if result else "nothing"
            raise RuntimeError(f"{self.stack} server: expected {tag}, got {got!r}")
        return result[0].split(" ", 1)[1].strip()

    def cpu(self) -> tuple[float, int]:
        """The server process's CPU seconds and corked socket writes (-1 if not corked) so far."""
        stdin = self.proc.stdin
        assert stdin is not None
        stdin.write("cpu\n")
        stdin.flush()
        seconds, writes = self._expect("CPU", 10.0).split()
        return float(seconds), int(writes)

    def close(self) -> None:
        """Ask the server to stop; kill it if it has not within 5 s."""
        try:
            if self.proc.stdin is not None and self.proc.poll() is None:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            if self.proc.stdout is not None:
                self.proc.stdout.close()


@contextmanager
def servers(
    stacks: Sequence[str], stub_dir: str, use_uvloop: bool, max_hold_us: float | None = None
) -> Iterator[dict[str, ServerProcess]]:
    with ExitStack() as stack:
        started: dict[str, ServerProcess] = {}
        for name in stacks:
            server = ServerProcess(name, stub_dir, use_uvloop, max_hold_us)
            stack.callback(server.close)
            started[name] = server
        yield started


# --------------------------------------------------------------------------- clients

CallFn = Callable[[], Awaitable[None]]


class GrpcAioClient:
    """``grpc.aio`` client over one channel (or several, round robin), read/write API."""

    def __init__(self, stubs: Stubs, port: int, stack: str = "grpc.aio") -> None:
        aio: Any = importlib.import_module("grpc.aio")

        self.pb2 = stubs.pb2
        self.eof = aio.EOF
        options = [o for o in grpc_options(stack) if o[0] != "grpc.so_reuseport"]
        count = MULTI_CHANNELS if stack == "grpc.aio+4ch" else 1
        if count > 1:
            # Channels with equal arguments share one subchannel (one connection) from grpc's
            # global pool; a local pool per channel gives each its own connection.
            options.append(("grpc.use_local_subchannel_pool", 1))
        self.channels = [
            aio.insecure_channel(f"127.0.0.1:{port}", options=options) for _ in range(count)
        ]
        self.stubs = [stubs.pb2_grpc.RunnerProtocolStub(channel) for channel in self.channels]
        self.next = 0
        self.requests = client_messages(stubs.pb2)

    async def call(self) -> None:
        """One Engage exchange."""
        stub = self.stubs[self.next]
        self.next = (self.next + 1) % len(self.stubs)
        call = stub.Engage()
        for request in self.requests:
            await call.write(request)
        await call.done_writing()
        received = []
        while True:
            msg = await call.read()  # raises AioRpcError on a non-OK status
            if msg is self.eof:
                break
            received.append(msg)
        check_reply(self.pb2, received)

    async def close(self) -> None:
        """Close the channels."""
        for channel in self.channels:
            await channel.close()


def _corked_channel_class(limits: dict[str, float]) -> type[Any]:
    from grpclib.client import Channel, Handler

    class CorkedH2Protocol(_cork_module().CorkedH2Protocol):  # type: ignore[misc]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            for name, value in limits.items():
                setattr(self.corked, name, value)

    class CorkedChannel(Channel):
        """A grpclib channel whose connection writes through runnerpool's cork."""

        def _protocol_factory(self) -> Any:
            return CorkedH2Protocol(Handler(), self._config, self._h2_config)

    return CorkedChannel


# Loads grpclib (and with it h2) when this module is imported, as the module did before the cork
# limits were added. CAUTION (found 2026-12-02): that is before ``use_jh2`` runs in a server
# process, so the ``grpclib+cork+jh2`` server's grpclib is bound to h2, not jh2, and its figures
# are h2's. Loaded after ``use_jh2``, grpclib 0.4.9 fails on jh2 5.0.15 in ``connection_made``
# ("Flow control increment must be between 1 and 2147483647").
_corked_channel_class({})


class GrpclibClient:
    """``grpclib`` client over one channel."""

    def __init__(self, stubs: Stubs, port: int, *, cork: dict[str, float] | None = None) -> None:
        from grpclib.client import Channel

        self.pb2 = stubs.pb2
        channel = Channel if cork is None else _corked_channel_class(cork)
        self.channel = channel("127.0.0.1", port)
        self.stub = stubs.grpclib.RunnerProtocolStub(self.channel)
        self.requests = client_messages(stubs.pb2)

    async def call(self) -> None:
        """One Engage exchange."""
        try_msg, data_msg, eof_msg = self.requests
        async with self.stub.Engage.open() as stream:  # raises GRPCError on a non-OK status
            await stream.send_message(try_msg)
            await stream.send_message(data_msg)
            await stream.send_message(eof_msg, end=True)
            received = [msg async for msg in stream]
        check_reply(self.pb2, received)

    async def close(self) -> None:
        """Close the channel."""
        self.channel.close()


class LoopThread:
    """An event loop of its own (uvloop) in a thread, for one stack's client.

    A whole cell runs there (:meth:`run`), so the main loop only waits for its result and
    the thread's loop does every call, as a process on uvloop would.
    """

    def __init__(self, use_uvloop: bool) -> None:
        factory = new_loop_factory(use_uvloop)
        self.loop = factory() if factory is not None else asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    async def run(self, coro: Awaitable[Any]) -> Any:
        """Run ``coro`` on this thread's loop and wait for it from the calling loop."""

        async def wrapper() -> Any:
            return await coro

        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(wrapper(), self.loop))

    def stop(self) -> None:
        """Stop the loop and join the thread."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class ThreadedClient:
    """A client that lives on a :class:`LoopThread`; :meth:`drive` runs a cell there."""

    def __init__(self, make: Callable[[], GrpclibClient], thread: LoopThread) -> None:
        self.thread = thread

        async def build() -> GrpclibClient:
            return make()  # on the thread's loop: grpclib's channel keeps the current loop

        self.client = asyncio.run_coroutine_threadsafe(build(), thread.loop).result(10)

    async def drive(self, calls: int, concurrency: int) -> list[float]:
        """Run a cell on the thread's loop."""
        result: list[float] = await self.thread.run(drive(self.client.call, calls, concurrency))
        return result

    async def close(self) -> None:
        """Close the client on its loop, then stop the loop."""
        await self.thread.run(self.client.close())
        self.thread.stop()


Client = GrpcAioClient | GrpclibClient | ThreadedClient


async def drive_client(client: Client, calls: int, concurrency: int) -> list[float]:
    """Run ``calls`` calls of ``client`` with ``concurrency`` tasks, on the client's loop."""
    if isinstance(client, ThreadedClient):
        return await client.drive(calls, concurrency)
    return await drive(client.call, calls, concurrency)


def client_writes(client: Client) -> int:
    """The client's corked socket writes so far (-1: not a corked grpclib client)."""
    inner = client.client if isinstance(client, ThreadedClient) else client
    protocol = getattr(getattr(inner, "channel", None), "_protocol", None)
    corked = getattr(protocol, "corked", None)
    return -1 if corked is None else int(corked.writes)


def make_client(stubs: Stubs, stack: str, port: int, max_hold_us: float | None = None) -> Client:
    """The client of ``stack`` connected to ``port``."""
    if stack.startswith("grpc.aio"):
        return GrpcAioClient(stubs, port, stack)
    cork = cork_limits(stack, max_hold_us) if stack.startswith("grpclib+cork") else None
    if stack.endswith("+uvloop"):
        return ThreadedClient(lambda: GrpclibClient(stubs, port, cork=cork), LoopThread(True))
    return GrpclibClient(stubs, port, cork=cork)


# --------------------------------------------------------------------------- measurement


@dataclass
class Cell:
    """One measured cell: a stack at a concurrency."""

    stack: str
    concurrency: int
    calls: int
    seconds: float
    p50_ms: float
    p99_ms: float
    client_cpu_us: float
    server_cpu_us: float
    client_writes: float = math.nan  # corked socket writes per call; nan when not corked
    server_writes: float = math.nan

    @property
    def rate(self) -> float:
        """Calls per second."""
        return self.calls / self.seconds


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


async def drive(call: CallFn, calls: int, concurrency: int) -> list[float]:
    """Run ``calls`` calls with ``concurrency`` tasks back to back; return the latencies."""
    latencies: list[float] = []
    left = calls

    async def worker() -> None:
        nonlocal left
        clock = time.perf_counter
        while left > 0:
            left -= 1
            start = clock()
            await call()
            latencies.append(clock() - start)

    async with asyncio.timeout(CELL_TIMEOUT), asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return latencies


async def measure(
    stack: str, client: Client, server: ServerProcess, calls: int, concurrency: int
) -> Cell:
    gc.collect()
    server_cpu0, server_writes0 = server.cpu()
    writes0 = client_writes(client)
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    latencies = await drive_client(client, calls, concurrency)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    writes = client_writes(client) - writes0
    server_cpu, server_writes = server.cpu()
    server_cpu -= server_cpu0
    latencies.sort()
    n = len(latencies)
    return Cell(
        stack=stack,
        concurrency=concurrency,
        calls=len(latencies),
        seconds=wall,
        p50_ms=percentile(latencies, 0.50) * 1e3,
        p99_ms=percentile(latencies, 0.99) * 1e3,
        client_cpu_us=cpu / len(latencies) * 1e6,
        server_cpu_us=server_cpu / len(latencies) * 1e6,
        client_writes=writes / n if writes0 >= 0 else math.nan,
        server_writes=(server_writes - server_writes0) / n if server_writes0 >= 0 else math.nan,
    )


async def run_benchmark(
    stubs: Stubs,
    procs: dict[str, ServerProcess],
    concurrencies: Sequence[int],
    calls: int,
    repeats: int,
    warmup: int,
    max_hold_us: float | None = None,
) -> list[Cell]:
    clients: dict[str, Client] = {}
    try:
        for name, proc in procs.items():
            clients[name] = make_client(stubs, name, proc.port, max_hold_us)
        for client in clients.values():  # connect, fill caches, let both settle
            await drive_client(client, warmup, max(concurrencies))
            await drive_client(client, warmup // 4, 1)
        best: dict[tuple[str, int], Cell] = {}
        for repeat in range(repeats):
            for concurrency in concurrencies:
                order = list(clients) if repeat % 2 == 0 else list(reversed(clients))
                for name in order:
                    cell = await measure(name, clients[name], procs[name], calls, concurrency)
                    key = (name, concurrency)
                    if key not in best or cell.rate > best[key].rate:
                        best[key] = cell
                    print(
                        f"  repeat {repeat + 1}: {name:<19} c={concurrency:<3} {cell.rate:8.0f} "
                        "calls/s",
                        file=sys.stderr,
                    )
        return [best[(name, c)] for c in concurrencies for name in clients]
    finally:
        for client in clients.values():
            await client.close()


BASELINE = "grpclib+cork"


def print_table(cells: Sequence[Cell]) -> None:
    """Print the cells, with ratios against :data:`BASELINE` at the same concurrency if run."""
    base = {c.concurrency: c for c in cells if c.stack == BASELINE}
    header = (
        f"{'stack':<20} {'conc':>4} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'client CPU µs/call':>18} {'server CPU µs/call':>18} {'writes/call c/s':>15} "
        f"{'calls/s /base':>13} {'client CPU /base':>16} {'server CPU /base':>16}"
    )
    print(header)
    print("-" * len(header))
    for c in cells:
        b = base.get(c.concurrency)
        ratios = (
            f"{c.rate / b.rate:>13.2f} {c.client_cpu_us / b.client_cpu_us:>16.2f} "
            f"{c.server_cpu_us / b.server_cpu_us:>16.2f}"
            if b is not None
            else f"{'':>13} {'':>16} {'':>16}"
        )
        print(
            f"{c.stack:<20} {c.concurrency:>4} {c.rate:>8.0f} {c.p50_ms:>7.2f} {c.p99_ms:>7.2f} "
            f"{c.client_cpu_us:>18.0f} {c.server_cpu_us:>18.0f} {_writes(c):>15} {ratios}"
        )
    if base:
        print(f"(/base: over {BASELINE} at the same concurrency, same run)")


def _writes(cell: Cell) -> str:
    if math.isnan(cell.client_writes):
        return ""
    return f"{cell.client_writes:.2f}/{cell.server_writes:.2f}"


def describe_environment(use_uvloop: bool) -> str:
    grpc: Any = importlib.import_module("grpc")
    import grpclib
    from google.protobuf import __version__ as protobuf_version
    from google.protobuf.internal import api_implementation

    loop = "uvloop" if use_uvloop else "asyncio"
    return (
        f"CPython {platform.python_version()}, {os.cpu_count()} cores, {loop} event loop; "
        f"grpcio {grpc.__version__}, grpclib {grpclib.__version__}, "
        f"protobuf {protobuf_version} ({api_implementation.Type()})"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Generate the stubs, start the servers, measure every cell and print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per cell")
    parser.add_argument("--repeats", type=int, default=3, help="repetitions; best kept")
    parser.add_argument("--warmup", type=int, default=1000, help="warm-up calls per stack")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--stacks", nargs="+", choices=STACKS, default=list(DEFAULT_STACKS))
    parser.add_argument(
        "--grpc-env",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="environment for grpc core in this run, client and servers (GRPC_POLL_STRATEGY=poll)",
    )
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (not required)")
    parser.add_argument(
        "--cork-max-hold-us",
        type=float,
        help="CorkedTransport.max_hold in µs for the corked stacks but +turn (default: its own)",
    )
    parser.add_argument("--serve", choices=STACKS, help=argparse.SUPPRESS)
    parser.add_argument("--stubs", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for assignment in args.grpc_env:
        # Set before grpc is first imported (it reads them once); the servers inherit them.
        name, sep, value = assignment.partition("=")
        if not sep or not name.startswith("GRPC_"):
            parser.error(f"--grpc-env takes GRPC_NAME=VALUE, not {assignment!r}")
        os.environ[name] = value

    if args.serve is not None:
        serve(args.serve, args.stubs, args.uvloop, args.cork_max_hold_us)
        return

    with tempfile.TemporaryDirectory(prefix="runnerpool-stubs-") as stub_dir:
        generate_stubs(stub_dir)
        stubs = import_stubs(stub_dir)
        print(describe_environment(args.uvloop))
        if args.grpc_env:
            print("grpc environment: " + " ".join(args.grpc_env))
        print(
            f"{args.calls} calls per cell, best of {args.repeats} interleaved repeats, "
            f"{args.warmup} warm-up calls per stack; server in its own process, one connection"
        )
        started = time.perf_counter()
        with (
            servers(args.stacks, stub_dir, args.uvloop, args.cork_max_hold_us) as procs,
            asyncio.Runner(loop_factory=new_loop_factory(args.uvloop)) as runner,
        ):
            cells = runner.run(
                run_benchmark(
                    stubs,
                    procs,
                    args.concurrency,
                    args.calls,
                    args.repeats,
                    args.warmup,
                    args.cork_max_hold_us,
                )
            )
        print()
        print_table(cells)
        print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
