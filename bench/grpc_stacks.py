"""gRPC stack benchmark: one runner-protocol call over ``grpc.aio`` against ``grpclib``.

One call is the ``Engage`` exchange of Fn's runner protocol as runnerpool makes it: the client
opens the bidi stream and sends a ``TryCall`` (a ~400-byte Fn call JSON), a 5-byte body frame
and an empty frame with ``eof``; the server reads those, parses the call JSON for its id, sends
``CallResultStart`` (200, one header), one body frame and ``CallFinished``, and returns OK. The
client reads every message until the stream ends and checks the last one.

Each stack runs its own client and server: grpcio's ``grpc.aio`` on both sides, or ``grpclib``
on both sides. The server runs in a separate process (this module with ``--serve``) bound to
127.0.0.1 port 0; it reports its port on stdout and, when asked on stdin, its
``time.process_time()``. The client runs in this process, over one channel (one HTTP/2
connection) per stack, with 1, 16 and 64 asyncio tasks doing calls back to back.

For each cell: calls per second, p50 and p99 latency of a whole call (open to stream end),
client CPU per call (``time.process_time()`` of this process, so grpcio's own threads count)
and server CPU per call (the same in the server process). Both stacks are warmed up first;
every cell runs a fixed number of calls, the cells are interleaved stack by stack within each
of the repetitions so machine noise hits both alike, and the row shown is the repetition with
the best throughput. Stubs are generated at start from ``src/runnerpool/rpc/_proto`` with
``grpc_tools.protoc`` into a temporary directory. Loopback only; the server processes are
killed at the end, also on error.

Run: ``python -m bench.grpc_stacks`` (``--help`` for the knobs; ``--uvloop`` runs both client
and servers on uvloop when it is installed, which this benchmark does not require).
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
#: issue 16): one socket write per event-loop turn instead of one per HTTP/2 frame group.
STACKS = ("grpc.aio", "grpclib", "grpclib+cork")
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


async def serve_grpc_aio(stubs: Stubs, stop: asyncio.Event) -> None:
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
    server = aio.server()
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
    server = (CorkedServer if corked else Server)([handler])
    # proto must say TCP: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP,
    # and without it Nagle plus delayed ACKs add ~40 ms to every call.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    await server.start(sock=sock)
    _report(f"PORT {sock.getsockname()[1]}")
    await stop.wait()
    server.close()
    await server.wait_closed()


def _report(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _command_thread(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Answer ``cpu`` with this process's CPU seconds; stop the server on ``quit`` or EOF."""
    for line in sys.stdin:
        command = line.strip()
        if command == "cpu":
            _report(f"CPU {time.process_time():.9f}")
        elif command == "quit":
            break
    loop.call_soon_threadsafe(stop.set)


def serve(stack: str, stub_dir: str, use_uvloop: bool) -> None:
    """The server process: run ``stack``'s server until stdin says quit or closes."""
    stubs = import_stubs(stub_dir)

    async def main() -> None:
        stop = asyncio.Event()
        threading.Thread(
            target=_command_thread, args=(asyncio.get_running_loop(), stop), daemon=True
        ).start()
        if stack == "grpc.aio":
            await serve_grpc_aio(stubs, stop)
        else:
            await serve_grpclib(stubs, stop, corked=stack == "grpclib+cork")

    with asyncio.Runner(loop_factory=new_loop_factory(use_uvloop)) as runner:
        runner.run(main())


class ServerProcess:
    """A server child process and its stdin/stdout command channel."""

    def __init__(self, stack: str, stub_dir: str, use_uvloop: bool) -> None:
        argv = [sys.executable, "-m", "bench.grpc_stacks", "--serve", stack, "--stubs", stub_dir]
        if use_uvloop:
            argv.append("--uvloop")
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

    def cpu(self) -> float:
        """The server process's CPU seconds so far."""
        stdin = self.proc.stdin
        assert stdin is not None
        stdin.write("cpu\n")
        stdin.flush()
        return float(self._expect("CPU", 10.0))

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
    stacks: Sequence[str], stub_dir: str, use_uvloop: bool
) -> Iterator[dict[str, ServerProcess]]:
    with ExitStack() as stack:
        started: dict[str, ServerProcess] = {}
        for name in stacks:
            server = ServerProcess(name, stub_dir, use_uvloop)
            stack.callback(server.close)
            started[name] = server
        yield started


# --------------------------------------------------------------------------- clients

CallFn = Callable[[], Awaitable[None]]


class GrpcAioClient:
    """``grpc.aio`` client over one channel, read/write API."""

    def __init__(self, stubs: Stubs, port: int) -> None:
        aio: Any = importlib.import_module("grpc.aio")

        self.pb2 = stubs.pb2
        self.eof = aio.EOF
        self.channel = aio.insecure_channel(f"127.0.0.1:{port}")
        self.stub = stubs.pb2_grpc.RunnerProtocolStub(self.channel)
        self.requests = client_messages(stubs.pb2)

    async def call(self) -> None:
        """One Engage exchange."""
        call = self.stub.Engage()
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
        """Close the channel."""
        await self.channel.close()


def _corked_channel_class() -> type[Any]:
    from grpclib.client import Channel, Handler

    CorkedH2Protocol = _cork_module().CorkedH2Protocol

    class CorkedChannel(Channel):
        """A grpclib channel whose connection writes through runnerpool's cork."""

        def _protocol_factory(self) -> Any:
            return CorkedH2Protocol(Handler(), self._config, self._h2_config)

    return CorkedChannel


_CorkedChannel = _corked_channel_class()


class GrpclibClient:
    """``grpclib`` client over one channel."""

    def __init__(self, stubs: Stubs, port: int, *, corked: bool = False) -> None:
        from grpclib.client import Channel

        self.pb2 = stubs.pb2
        self.channel = (_CorkedChannel if corked else Channel)("127.0.0.1", port)
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
    stack: str, call: CallFn, server: ServerProcess, calls: int, concurrency: int
) -> Cell:
    gc.collect()
    server_cpu0 = server.cpu()
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    latencies = await drive(call, calls, concurrency)
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    server_cpu = server.cpu() - server_cpu0
    latencies.sort()
    return Cell(
        stack=stack,
        concurrency=concurrency,
        calls=len(latencies),
        seconds=wall,
        p50_ms=percentile(latencies, 0.50) * 1e3,
        p99_ms=percentile(latencies, 0.99) * 1e3,
        client_cpu_us=cpu / len(latencies) * 1e6,
        server_cpu_us=server_cpu / len(latencies) * 1e6,
    )


async def run_benchmark(
    stubs: Stubs,
    procs: dict[str, ServerProcess],
    concurrencies: Sequence[int],
    calls: int,
    repeats: int,
    warmup: int,
) -> list[Cell]:
    clients: dict[str, GrpcAioClient | GrpclibClient] = {}
    try:
        for name, proc in procs.items():
            clients[name] = (
                GrpcAioClient(stubs, proc.port)
                if name == "grpc.aio"
                else GrpclibClient(stubs, proc.port, corked=name == "grpclib+cork")
            )
        for client in clients.values():  # connect, fill caches, let both settle
            await drive(client.call, warmup, max(concurrencies))
            await drive(client.call, warmup // 4, 1)
        best: dict[tuple[str, int], Cell] = {}
        for repeat in range(repeats):
            for concurrency in concurrencies:
                order = list(clients) if repeat % 2 == 0 else list(reversed(clients))
                for name in order:
                    cell = await measure(name, clients[name].call, procs[name], calls, concurrency)
                    key = (name, concurrency)
                    if key not in best or cell.rate > best[key].rate:
                        best[key] = cell
                    print(
                        f"  repeat {repeat + 1}: {name:<9} c={concurrency:<3} {cell.rate:8.0f} "
                        "calls/s",
                        file=sys.stderr,
                    )
        return [best[(name, c)] for c in concurrencies for name in clients]
    finally:
        for client in clients.values():
            await client.close()


def print_table(cells: Sequence[Cell]) -> None:
    header = (
        f"{'stack':<10} {'conc':>4} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'client CPU µs/call':>18} {'server CPU µs/call':>18}"
    )
    print(header)
    print("-" * len(header))
    for c in cells:
        print(
            f"{c.stack:<10} {c.concurrency:>4} {c.rate:>8.0f} {c.p50_ms:>7.2f} {c.p99_ms:>7.2f} "
            f"{c.client_cpu_us:>18.0f} {c.server_cpu_us:>18.0f}"
        )


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
    parser.add_argument("--stacks", nargs="+", choices=STACKS, default=list(STACKS))
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop (not required)")
    parser.add_argument("--serve", choices=STACKS, help=argparse.SUPPRESS)
    parser.add_argument("--stubs", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve is not None:
        serve(args.serve, args.stubs, args.uvloop)
        return

    with tempfile.TemporaryDirectory(prefix="runnerpool-stubs-") as stub_dir:
        generate_stubs(stub_dir)
        stubs = import_stubs(stub_dir)
        print(describe_environment(args.uvloop))
        print(
            f"{args.calls} calls per cell, best of {args.repeats} interleaved repeats, "
            f"{args.warmup} warm-up calls per stack; server in its own process, one connection"
        )
        started = time.perf_counter()
        with (
            servers(args.stacks, stub_dir, args.uvloop) as procs,
            asyncio.Runner(loop_factory=new_loop_factory(args.uvloop)) as runner,
        ):
            cells = runner.run(
                run_benchmark(stubs, procs, args.concurrency, args.calls, args.repeats, args.warmup)
            )
        print()
        print_table(cells)
        print(f"\n(total {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
