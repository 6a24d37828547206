"""The load balancer's answers byte for byte, as a client's socket reads them.

The expected bytes were recorded from the Starlette front end (before ``/invoke`` and the
triggers moved to a plain ASGI handler, issue 16); only the ``date`` header, the call id and
the port are masked. A success, each error a call can get (400, 404, 405, 413, 502, 503
with ``Retry-After``), a detached call's 202 and a trigger's answer are covered.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from starlette.responses import Response

from runnerpool.lb import Registry, create_app
from runnerpool.lb._agent import LBAgent
from runnerpool.placers import create_placer
from runnerpool.testing import FakeRunner, FakeRunnerPool, succeed
from tests.lb.conftest import FUNCTIONS_TOML, Process, Processes, wait_active

REPOSITORY = Path(__file__).parents[2]

CONFIG = (
    FUNCTIONS_TOML
    + """
[[triggers]]
name = "echo-trig"
app = "tests"
function = "echo"
source = "/echo"
"""
)


@pytest.fixture(scope="module")
def runner(module_processes: Processes) -> Process:
    """A runner of one call at a time, too small for ``big``."""
    return module_processes.start(
        [
            *("--log-level", "warning", "runner", "--port", "0"),
            *("--functions", "tests.lb.trigger_functions:FUNCTIONS"),
            *("--max-memory", str(256 * 1024 * 1024), "--max-calls", "1"),
        ],
        "runner listening on ",
        env={"PYTHONPATH": str(REPOSITORY)},
    )


@pytest.fixture(scope="module")
def lb(module_processes: Processes, runner: Process) -> Process:
    """A load balancer with small body limits in front of :func:`runner`."""
    return module_processes.lb(
        [runner.address],
        *("--max-request-size", "100", "--max-response-size", "50"),
        config=module_processes.config(CONFIG),
    )


async def exchange(address: str, request: bytes) -> bytes:
    """Send one raw request on a new connection; return the whole response, masked."""
    host, _, port = address.removeprefix("http://").rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"content-length: (\d+)\r\n", head)
        body = await reader.readexactly(int(length.group(1))) if length else b""
    finally:
        writer.close()
    raw = head + body
    raw = re.sub(rb"date: [^\r]*\r\n", b"date: DATE\r\n", raw)
    for call_id in set(re.findall(rb"fn-call-id: ([0-9A-Z]{26})\r\n", raw)):
        raw = raw.replace(call_id, b"CALLID")
    return raw.replace(port.encode(), b"PORT")


def post(path: str, body: bytes, *headers: bytes) -> bytes:
    """Return a raw POST request."""
    lines = [b"POST " + path.encode() + b" HTTP/1.1", b"host: lb", *headers]
    lines.append(b"content-length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


CASES = {
    "success": (
        post("/invoke/echo", b"hello", b"content-type: text/plain"),
        (
            b"HTTP/1.1 200 OK\r\n"
            b"date: DATE\r\n"
            b"server: uvicorn\r\n"
            b"content-length: 5\r\n"
            b"content-type: text/plain\r\n"
            b"fn-call-id: CALLID\r\n"
            b"\r\n"
            b"hello"
        ),
    ),
    "not-found": (
        post("/invoke/nope", b"x"),
        (
            b"HTTP/1.1 404 Not Found\r\n"
            b"date: DATE\r\n"
            b"server: uvicorn\r\n"
            b"fn-call-id: CALLID\r\n"
            b"content-length: 27\r\n"
            b"content-type: application/json; charset=utf-8\r\n"
            b"\r\n"
            b'{"message":"Fn not found"}\n'
        ),
    ),
    "method-not-allowed": (
        b"GET /invoke/echo HTTP/1.1\r\nhost: lb\r\n\r\n",
        (
            b"HTTP/1.1 405 Method Not Allowed\r\n"
            b"date: DATE\r\n"
            b"server: uvicorn\r\n"
            b"content-length: 51\r\n"
            b"content-type: application/json; charset=utf-8\r\n"
            b"\r\n"
            b'{"message":"Method not allowed: GET /invoke/echo"}\n'
        ),
    ),
    "request-too-large": (
        post("/invoke/echo", b"x" * 101),
        (
            b"HTTP/1.1 413 Request Entity Too Large\r\n"
            b"date: DATE\r\n"
            b"server: uvicorn\r\n"
            b"fn-call-id: CALLID\r\n"
            b"content-length: 40\r\n"
            b"content-type: application/json; charset=utf-8\r\n"
            b"\r\n"
            b'{"message":"Request content too large"}\n'
        ),
    ),
    "response-too-large": (
        post("/invoke/echo", b"y" * 60),
        (
            b"HTTP/1.1 502 Bad Gateway\r\n"
            b"date: DATE\r\n"
            b"server: uvicorn\r\n"
            b"fn-call-id: CALLID\r\n"
            b"content-length: 47\r\n"
            b"content-type: application/json; charset=utf-8\r\n"
            b"\r\n"
            b'{"message":"function response body too large"}\n'
        ),
    ),
    "function-error": (
        post("/invoke/fail", b"x"),
        (
            b"HTTP/1.1 502 Bad Gateway\r\n"
            b"date: DATE\r\n"
            b"server: uvicorn\r\n"
            b"fn-call-id: CALLID\r\n"
            b"content-length: 30\r\n"
            b"content-type: application/json; charset=utf-8\r\n"
            b"\r\n"
            b'{"message":"function failed"}\n'
        ),
    ),
    "too-big-for-runners": (
        post("/invoke/big", b"x"),
        (
            b"HTTP/1.1 400 Bad Request\r\n"
            b"date: DATE\r\n"
            b"server: uvicorn\r\n"
            b"fn-call-id: CALLID\r\n"
            b"content-length: 55\r\n"
            b"content-type: application/json; charset=utf-8\r\n"
            b"\r\n"
            b'{"message":"Requested CPU/Memory cannot be allocated"}\n'
        ),
    ),
    "detached": (
        post("/invoke/echo", b"x", b"fn-invoke-type: detached"),
        (
            b"HTTP/1.1 202 Accepted\r\n"
            b"date: DATE\r\n"
            b"server: uvicorn\r\n"
            b"fn-call-id: CALLID\r\n"
            b"content-length: 0\r\n"
            b"\r\n"
        ),
    ),
    "trigger": (
        post("/t/tests/echo?a=1", b"trig", b"content-type: text/plain"),
        (
            b"HTTP/1.1 200 OK\r\n"
            b"date: DATE\r\n"
            b"server: uvicorn\r\n"
            b"content-length: 4\r\n"
            b"content-type: text/plain\r\n"
            b"fn-call-id: CALLID\r\n"
            b"\r\n"
            b"trig"
        ),
    ),
    "trigger-missing": (
        post("/t/tests/none", b"x"),
        (
            b"HTTP/1.1 404 Not Found\r\n"
            b"date: DATE\r\n"
            b"server: uvicorn\r\n"
            b"fn-call-id: CALLID\r\n"
            b"content-length: 32\r\n"
            b"content-type: application/json; charset=utf-8\r\n"
            b"\r\n"
            b'{"message":"Trigger not found"}\n'
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_answer_bytes(lb: Process, case: str) -> None:
    """Each answer is byte-identical to the Starlette front end's (date, id and port masked)."""
    request, expected = CASES[case]
    assert await exchange(lb.address, request) == expected


BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"date: DATE\r\n"
    b"server: uvicorn\r\n"
    b"fn-call-id: CALLID\r\n"
    b"retry-after: 15\r\n"
    b"content-length: 42\r\n"
    b"content-type: application/json; charset=utf-8\r\n"
    b"\r\n"
    b'{"message":"Timed out - server too busy"}\n'
)


async def test_busy_answer_bytes(lb: Process, runner: Process) -> None:
    """Every runner busy: the 503 with Retry-After is byte-identical to the Starlette one's."""
    slow = asyncio.create_task(exchange(lb.address, post("/invoke/slow", b"1")))
    await wait_active([runner.address], 1)  # the slow call holds the runner's only slot
    assert await exchange(lb.address, post("/invoke/echo", b"x")) == BUSY
    assert (await slow).endswith(b"slept 1s")


@pytest.mark.parametrize("status", [200, 204, 304])
async def test_no_length_for_a_status_without_body(status: int) -> None:
    """A runner's 204 or 304 is answered without content-length, as Starlette's Response did."""
    registry = Registry.load(REPOSITORY / "src" / "runnerpool" / "examples.toml")
    runner = FakeRunner("127.0.0.1:1", then=succeed(b"", status_code=status))
    app = create_app(LBAgent(create_placer("ch"), FakeRunnerPool([runner])), registry)
    scope = {
        "type": "http",
        "method": "POST",
        "scheme": "http",
        "path": "/invoke/echo",
        "raw_path": b"/invoke/echo",
        "query_string": b"",
        "headers": [(b"host", b"lb"), (b"content-length", b"0")],
    }
    received = [{"type": "http.request", "body": b"", "more_body": False}]
    never = asyncio.Event()

    async def receive() -> dict[str, object]:
        if received:
            return received.pop()
        await never.wait()
        return {"type": "http.disconnect"}

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    await app(scope, receive, send)  # type: ignore[arg-type]
    start = sent[0]
    assert start["status"] == status
    starlette = Response(b"", status).raw_headers  # what the Starlette route sent first
    names = [name for name, _ in start["headers"]]  # type: ignore[attr-defined]
    assert names == [name for name, _ in starlette] + [b"fn-call-id"]
