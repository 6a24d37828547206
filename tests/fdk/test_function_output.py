"""A function's output, visible: in the runner's log, in its app's syslog, in ``runnerpool logs``.

Real processes: a ``runnerpool runner --bundles`` and a ``runnerpool lb`` on 127.0.0.1 (port 0)
run a bundle written here under Fn's real ``fdk`` package; the syslog servers are real
listeners on loopback (TCP, UDP, and TLS with a ``trustme`` certificate the runner trusts
through ``SSL_CERT_FILE``, as the system's trust store honours it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import httpx
import pytest
import trustme

from runnerpool import BufferedCall, Call, GrpcRunner
from tests.fdk.conftest import fdk_runner_command, until, wheelhouse
from tests.fdk.test_end_to_end import short_tmpdir
from tests.lb.conftest import RUNNERPOOL, Process, Processes

#: Prints the token it is given; raises on the second call of its process.
TOKENS = """\
import io

calls = 0

def handler(ctx, data: io.BytesIO = None):
    global calls
    calls += 1
    token = data.getvalue().decode()
    print(f"token {token} call {calls}", flush=True)
    if calls == 2:
        raise RuntimeError(f"second call {token}")
    return "ok"
"""

#: Writes one 100 KB line, then as many short lines as the body says, as fast as it can.
FLOOD = """\
import io, sys

def handler(ctx, data: io.BytesIO = None):
    sys.stdout.write("L" * 100_000 + "\\n")
    for n in range(int(data.getvalue())):
        sys.stdout.write(f"flood {n}\\n")
    sys.stdout.flush()
    return "done"
"""

#: One function per syslog destination, and one of an app without ``syslog_url``.
REGISTRY = """\
[[apps]]
name = "quiet"

[[apps]]
name = "viatcp"
syslog_url = "tcp://127.0.0.1:{tcp}"

[[apps]]
name = "viaudp"
syslog_url = "udp://127.0.0.1:{udp}"

[[apps]]
name = "viatls"
syslog_url = "tcp+tls://127.0.0.1:{tls}"

[[functions]]
id = "quiet-fn"
name = "tokens"
app = "quiet"
image = "tokens"

[[functions]]
id = "tcp-fn"
name = "tokens"
app = "viatcp"
image = "tokens"

[[functions]]
id = "udp-fn"
name = "tokens"
app = "viaudp"
image = "tokens"

[[functions]]
id = "tls-fn"
name = "tokens"
app = "viatls"
image = "tokens"
"""

#: Fn's syslog line: priority, version 2, UTC time, host "fn", then call, function and app.
SYSLOG_LINE = re.compile(
    rb"<(?P<priority>\d+)>2 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ fn - - - - "
    rb"call_id=(?P<call>\S+) func_name=(?P<fn>\S+) app_name=(?P<app>\S+) (?P<line>.*)\n"
)


@dataclass
class Listener:
    """What one syslog server received, as bytes, and its connections (closed at the end)."""

    data: bytearray = field(default_factory=bytearray)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)

    def lines(self) -> list[re.Match[bytes]]:
        """The syslog lines received so far (each must be Fn's format)."""
        found = []
        for raw in bytes(self.data).splitlines(keepends=True):
            match = SYSLOG_LINE.fullmatch(raw)
            assert match is not None, raw
            found.append(match)
        return found


@dataclass
class Listeners:
    """TCP, UDP and TLS syslog servers on loopback."""

    tcp: Listener
    udp: Listener
    tls: Listener
    ports: dict[str, int]
    ca_file: Path

    def all(self) -> list[Listener]:
        """Every listener."""
        return [self.tcp, self.udp, self.tls]


@dataclass
class Stack:
    """A runner and a load balancer, and the syslog servers of their apps."""

    runner: Process
    lb: Process
    listeners: Listeners

    async def invoke(self, fn_id: str, body: str) -> httpx.Response:
        """Call a function through the load balancer."""
        async with httpx.AsyncClient(base_url=self.lb.address, timeout=30) as client:
            return await client.post(f"/invoke/{fn_id}", content=body)


async def _serve_stream(listener: Listener, context: ssl.SSLContext | None) -> asyncio.Server:
    async def take(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener.writers.append(writer)
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                listener.data += data

    return await asyncio.start_server(take, "127.0.0.1", 0, ssl=context)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, listener: Listener) -> None:
        self.listener = listener

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.listener.data += data


@pytest.fixture
async def listeners(tmp_path: Path) -> AsyncIterator[Listeners]:
    """Syslog servers on 127.0.0.1: TCP, UDP, and TLS with a certificate of a test CA."""
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    tcp, udp, tls = Listener(), Listener(), Listener()
    tcp_server = await _serve_stream(tcp, None)
    tls_server = await _serve_stream(tls, server_context)
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _Datagrams(udp), local_addr=("127.0.0.1", 0)
    )
    ports = {
        "tcp": tcp_server.sockets[0].getsockname()[1],
        "tls": tls_server.sockets[0].getsockname()[1],
        "udp": transport.get_extra_info("sockname")[1],
    }
    try:
        yield Listeners(tcp, udp, tls, ports, ca_file)
    finally:
        transport.close()
        for server, listener in ((tcp_server, tcp), (tls_server, tls)):
            server.close()
            for writer in listener.writers:
                writer.close()
                with contextlib.suppress(OSError, ssl.SSLError):
                    await writer.wait_closed()
            await server.wait_closed()


@pytest.fixture
def bundles(tmp_path: Path) -> Path:
    """A bundle directory holding ``tokens`` and ``flood``."""
    (tmp_path / "bundles" / "tokens").mkdir(parents=True)
    (tmp_path / "bundles" / "tokens" / "func.py").write_text(TOKENS)
    (tmp_path / "bundles" / "flood").mkdir()
    (tmp_path / "bundles" / "flood" / "func.py").write_text(FLOOD)
    return tmp_path / "bundles"


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runners' state directory: the environment is built once for the module."""
    return tmp_path_factory.mktemp("output-state")


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    """The test's processes; runners get SIGTERM first, so that they stop their functions."""
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        for popen in started._started:
            if popen.poll() is None:
                popen.send_signal(signal.SIGTERM)
        for popen in started._started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(15)
        started.close()


def start_runner(
    processes: Processes, bundles: Path, state: Path, tmpdir: Path, *options: str, ca: Path
) -> Process:
    """Start an FDK runner at log level warning, as ``runnerpool dev`` starts its runners."""
    return processes.start(
        fdk_runner_command(bundles, state, global_options=options),
        "runner listening on ",
        env={"TMPDIR": str(tmpdir), "SSL_CERT_FILE": str(ca)},
    )


@pytest.fixture
def stack(
    processes: Processes, bundles: Path, state_dir: Path, listeners: Listeners
) -> Iterator[Stack]:
    """A runner serving ``tokens`` and a load balancer whose apps ship to the listeners."""
    with short_tmpdir() as tmpdir:
        runner = start_runner(processes, bundles, state_dir, tmpdir, ca=listeners.ca_file)
        config = processes.config(REGISTRY.format(**listeners.ports), "functions.toml")
        lb = processes.lb([runner.address], placer_config=None, log_level="warning", config=config)
        yield Stack(runner, lb, listeners)


async def eventually(check: Callable[[], object]) -> None:
    """Wait until ``check()`` is true: output travels through pipes and sockets."""
    await until(lambda: bool(check()), 15.0)


def received(listener: Listener, count: int) -> bool:
    """Whether ``listener`` received ``count`` lines."""
    return len(listener.lines()) >= count


class TestRunnerLog:
    async def test_token_and_traceback_with_call_ids(self, stack: Stack) -> None:
        """A function's print and its second call's traceback are in the runner's log.

        The runner runs at --log-level warning, as `runnerpool dev` runs it: function lines
        are shown all the same, each with its app, function, call id and stream.
        """
        token = uuid.uuid4().hex
        first = await stack.invoke("quiet-fn", token)
        second = await stack.invoke("quiet-fn", token)
        assert (first.status_code, second.status_code) == (200, 502)
        first_id, second_id = first.headers["fn-call-id"], second.headers["fn-call-id"]
        printed = f"app=quiet fn=quiet-fn call={first_id} stdout: token {token} call 1"
        failed = f"app=quiet fn=quiet-fn call={second_id} stderr: "
        await eventually(lambda: printed in stack.runner.stderr())
        await eventually(lambda: failed in stack.runner.stderr())
        [traceback] = [
            line
            for line in stack.runner.stderr().splitlines()
            if failed in line and "Error" in line
        ]
        assert f"second call {token}" in traceback
        assert "raise RuntimeError" in traceback
        assert "INFO runnerpool.function" in traceback

    async def test_json_lines_carry_the_ids_as_fields(
        self, processes: Processes, bundles: Path, state_dir: Path, tmp_path: Path
    ) -> None:
        """In JSON mode each function line is an object with call, function, app and stream."""
        with short_tmpdir() as tmpdir:
            runner = start_runner(
                processes,
                bundles,
                state_dir,
                tmpdir,
                "--log-format",
                "json",
                ca=tmp_path / "none.pem",
            )
            client = GrpcRunner(runner.address)
            token = uuid.uuid4().hex
            try:
                model = Call(
                    id=f"call-{token}", app_id="app-j", fn_id="fn-j", image="tokens", timeout=30
                )
                call = BufferedCall(model, body=token.encode())
                await client.try_exec(call)
            finally:
                await client.aclose()

            def entries() -> list[dict[str, object]]:
                lines = runner.stderr().splitlines()
                return [json.loads(line) for line in lines if token in line]

            await eventually(entries)
            [entry] = entries()
            assert entry["message"] == f"token {token} call 1"
            assert (entry["logger"], entry["level"]) == ("runnerpool.function", "info")
            assert (entry["call_id"], entry["fn_id"], entry["app_id"], entry["stream"]) == (
                f"call-{token}",
                "fn-j",
                "app-j",
                "stdout",
            )

    async def test_a_flood_and_a_long_line_are_bounded(
        self, processes: Processes, bundles: Path, state_dir: Path, tmp_path: Path
    ) -> None:
        """A 100 KB line is cut to 8 KiB with a marker; of 5001 lines at once, few are logged.

        1000 at once, then 200 a second while the flood lasts; a warning counts the others.
        """
        with short_tmpdir() as tmpdir:
            runner = start_runner(processes, bundles, state_dir, tmpdir, ca=tmp_path / "none.pem")
            client = GrpcRunner(runner.address)
            try:
                model = Call(id="flood-1", app_id="a", fn_id="flood", image="flood", timeout=30)
                call = BufferedCall(model, body=b"5000")
                await client.try_exec(call)
                assert bytes(call.response_writer.body) == b"done"
            finally:
                await client.aclose()
            notice = "line(s) of function flood not logged"
            await eventually(lambda: notice in runner.stderr())
            lines = runner.stderr().splitlines()
            ours = [line for line in lines if "call=flood-1 stdout: " in line]
            [long_line] = [line for line in ours if "LLLL" in line]
            assert long_line.endswith("L" * 8192 + f"... [{100_000 - 8192} bytes cut]")
            assert 1000 <= len(ours) < 2000
            warnings = [line for line in lines if notice in line]
            assert all("WARNING runnerpool.function: app=a fn=flood" in w for w in warnings)
            counted = sum(int(w.split(f" {notice}")[0].rsplit(" ", 1)[1]) for w in warnings)
            assert 0 < counted <= 5001 - len(ours)


class TestSyslog:
    async def test_lines_reach_each_apps_syslog_in_fns_format(self, stack: Stack) -> None:
        """Each app's lines reach its syslog server (tcp, udp, tls) in Fn's format.

        stdout is severity info (14), the traceback on stderr severity err (11); the app
        without syslog_url sends nothing anywhere.
        """
        token = uuid.uuid4().hex
        calls: dict[str, list[str]] = {}
        for scheme in ("tcp", "udp", "tls", "quiet"):
            responses = [await stack.invoke(f"{scheme}-fn", f"{scheme}-{token}") for _ in "12"]
            assert [r.status_code for r in responses] == [200, 502]
            calls[scheme] = [r.headers["fn-call-id"] for r in responses]
        listeners = stack.listeners
        for scheme, listener in (
            ("tcp", listeners.tcp),
            ("udp", listeners.udp),
            ("tls", listeners.tls),
        ):
            app = f"via{scheme}"
            await eventually(partial(received, listener, 3))
            ours = [m for m in listener.lines() if f"{scheme}-{token}".encode() in m["line"]]
            first, second = calls[scheme]
            printed = [
                (m["priority"], m["call"], m["line"])
                for m in ours
                if m["call"] == b"%s" % first.encode()
            ]
            assert printed == [(b"14", first.encode(), f"token {scheme}-{token} call 1".encode())]
            assert all((m["fn"], m["app"]) == (f"{scheme}-fn".encode(), app.encode()) for m in ours)
            failing = [m for m in ours if m["call"] == second.encode() and m["priority"] == b"11"]
            assert any(b"raise RuntimeError" in m["line"] for m in failing)
        await asyncio.sleep(0.5)
        for listener in listeners.all():
            assert f"quiet-{token}".encode() not in listener.data


class TestLogsCommand:
    async def test_prints_a_calls_lines_and_exits(self, stack: Stack) -> None:
        """`runnerpool logs ADDRESS` prints the lines the runner holds, with call ids, and exits."""
        token = uuid.uuid4().hex
        response = await stack.invoke("quiet-fn", token)
        call_id = response.headers["fn-call-id"]
        result = await asyncio.to_thread(
            subprocess.run,
            [*RUNNERPOOL, "logs", stack.runner.address],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        [line] = [line for line in result.stdout.splitlines() if token in line]
        assert line.endswith(f" quiet quiet-fn {call_id} stdout: token {token} call 1")

    async def test_a_runner_without_function_logs_is_a_clear_error(
        self, processes: Processes
    ) -> None:
        """Against a runner of in-process functions (no StreamLogs), `logs` says so, exit 1."""
        runner = processes.runner()
        result = await asyncio.to_thread(
            subprocess.run,
            [*RUNNERPOOL, "logs", runner.address],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 1
        assert result.stderr == (
            f"Error: cannot read the logs of {runner.address}: "
            "runner not configured with logStreamer\n"
        )

    async def test_follow_prints_new_lines(self, stack: Stack) -> None:
        """`runnerpool logs --follow` prints lines written after it started, until interrupted."""
        follower = await asyncio.create_subprocess_exec(
            *RUNNERPOOL,
            "logs",
            "--follow",
            stack.runner.address,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            await asyncio.sleep(1)
            token = uuid.uuid4().hex
            response = await stack.invoke("quiet-fn", token)
            call_id = response.headers["fn-call-id"]
            assert follower.stdout is not None
            async with asyncio.timeout(30):
                while token not in (line := (await follower.stdout.readline()).decode()):
                    assert line, "runnerpool logs --follow ended"
            assert f" {call_id} stdout: token {token} call " in line
        finally:
            follower.send_signal(signal.SIGINT)
            code = await asyncio.wait_for(follower.wait(), 10)
        assert code == 0


class TestDev:
    async def test_dev_shows_a_failing_calls_traceback(
        self, processes: Processes, tmp_path: Path
    ) -> None:
        """`runnerpool dev` shows a function's traceback on its stderr, with the call id."""
        env = {
            "RUNNERPOOL_WHEELHOUSE": str(wheelhouse()),
            "RUNNERPOOL_STATE_DIR": str(tmp_path / "state"),
        }
        dev = processes.start(["dev", "--port", "0"], "runnerpool dev: ", ready_lines=7, env=env)
        url = re.search(r"load balancer\s+(http://\S+)", dev.address)
        assert url is not None
        async with httpx.AsyncClient(timeout=30) as client:
            response = await client.post(f"{url[1]}/invoke/fail", content=b"")
        assert response.status_code == 502
        call_id = response.headers["fn-call-id"]
        expected = f"INFO runnerpool.function: app=examples fn=fail call={call_id} stderr: "
        await eventually(lambda: expected in dev.stderr())
        [line] = [line for line in dev.stderr().splitlines() if expected in line]
        assert "this function always fails" in line
        assert 'raise RuntimeError("this function always fails")' in line
        # The runners' own messages stay at warning ("Runner listening on" is INFO).
        assert " INFO runnerpool.rpc." not in dev.stderr()
        dev.signal(signal.SIGINT)
        assert await dev.wait(30) == 0
