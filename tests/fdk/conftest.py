"""Real FDK function processes for the executor's tests.

The functions run under Fn's real ``fdk`` package, in a Python environment built once per test
session from the wheelhouse ``make install`` fills (nothing is downloaded).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from runnerpool._model import Call
from runnerpool.fdk import Bundles, Environments, FdkExecutor
from runnerpool.runner import Capacity, Execution

EXAMPLES = Path(__file__).parents[2] / "examples"

#: Test-only bundles: what the examples do not show.
TEST_BUNDLES = {
    # Answers its process id and the call's headers, to tell processes apart.
    "whoami/func.py": """\
import io, json, os
from fdk import response

def handler(ctx, data: io.BytesIO = None):
    body = json.dumps({"pid": os.getpid(), "headers": ctx.Headers(),
                       "env": {k: v for k, v in os.environ.items() if k.startswith("FN_")}})
    return response.Response(ctx, response_data=body, headers={"Content-Type": "application/json"})
""",
    # Takes 1 s to start; then like pidnap.
    "slowstart/func.py": """\
import io, os, time

def handler(ctx, data: io.BytesIO = None):
    time.sleep(float(data.getvalue() or b"0"))
    return str(os.getpid())
""",
    "slowstart/sitecustomize.py": "import time\ntime.sleep(1)\n",
    # Sleeps the seconds in the body, then answers its process id.
    "pidnap/func.py": """\
import io, os, time

def handler(ctx, data: io.BytesIO = None):
    time.sleep(float(data.getvalue() or b"0"))
    return str(os.getpid())
""",
    # A syntax error: the FDK starts anyway and fails every call (it imports lazily).
    "broken/func.py": "def handler(ctx, data=None)\n    return 'never'\n",
    # Exits while starting, before it listens (PYTHONPATH is the bundle: sitecustomize runs).
    "dies/func.py": "def handler(ctx, data=None):\n    return 'never'\n",
    "dies/sitecustomize.py": "import os\nos._exit(4)\n",
    # Takes 3 s to start listening.
    "sluggish/func.py": "def handler(ctx, data=None):\n    return 'late'\n",
    "sluggish/sitecustomize.py": "import time\ntime.sleep(3)\n",
    # A function server that answers a status Fn does not accept (the real FDK flattens user
    # statuses to 200, so this bundle replaces the FDK's server, as another FDK might be).
    "teapot/func.py": "def handler(ctx, data=None):\n    return 'never'\n",
    "teapot/sitecustomize.py": """\
import os, socket
import fdk

def handle(function):
    path = os.environ["FN_LISTENER"][len("unix:"):]
    server = socket.socket(socket.AF_UNIX)
    server.bind(os.path.join(os.path.dirname(path), "phonylsnr.sock"))
    server.listen()
    os.symlink("phonylsnr.sock", path)
    while True:
        connection, _ = server.accept()
        data = b""
        while b"\\r\\n\\r\\n" not in data:
            data += connection.recv(65536)
        connection.sendall(b"HTTP/1.1 418 I'm a teapot\\r\\nContent-Length: 0\\r\\n\\r\\n")
        connection.close()

fdk.handle = handle
""",
    # Out of memory in a coroutine handler, and while func.py is imported (on the first call).
    "hungry-async/func.py": """\
async def handler(ctx, data=None):
    block = b"x" * (400 * 1024 * 1024)
    return str(len(block))
""",
    "hungry-import/func.py": """\
BLOCK = b"x" * (400 * 1024 * 1024)

def handler(ctx, data=None):
    return str(len(BLOCK))
""",
    # A server that answers bytes that are not HTTP (the replaced FDK server, as in teapot).
    "garbage/func.py": "def handler(ctx, data=None):\n    return 'never'\n",
    "garbage/sitecustomize.py": """\
import os, socket
import fdk

def handle(function):
    path = os.environ["FN_LISTENER"][len("unix:"):]
    server = socket.socket(socket.AF_UNIX)
    server.bind(os.path.join(os.path.dirname(path), "phonylsnr.sock"))
    server.listen()
    os.symlink("phonylsnr.sock", path)
    while True:
        connection, _ = server.accept()
        connection.recv(65536)
        connection.sendall(b"\\x00\\x01 this is not HTTP\\r\\n\\r\\n")

fdk.handle = handle
""",
    # Writes 3 MB to stderr in one line, more than the runner reads as a line at once.
    "chatty/func.py": """\
import sys

def handler(ctx, data=None):
    sys.stderr.write("y" * (3 * 1024 * 1024))
    sys.stderr.flush()
    return "said a lot"
""",
    # Writes the number of lines given in the body, to stdout and stderr in turn.
    "verbose/func.py": """\
import io, sys

def handler(ctx, data: io.BytesIO = None):
    count = int(data.getvalue() or b"10")
    for n in range(count):
        stream = sys.stdout if n % 2 else sys.stderr
        stream.write(f"{ctx.CallID()} line {n}\\n")
        stream.flush()
    return str(count)
""",
    # A big answer: the body is the size in bytes.
    "big/func.py": """\
import io

def handler(ctx, data: io.BytesIO = None):
    return "x" * int(data.getvalue() or b"1000")
""",
    # Named by func.yaml, as Fn's CLI writes it.
    "yaml/func.yaml": "schema_version: 20180708\nname: yaml\nversion: 0.0.1\nruntime: python\n"
    "entrypoint: /python/bin/fdk /function/main.py greet\n",
    "yaml/main.py": "def greet(ctx, data=None):\n    return 'greetings'\n",
}


def wheelhouse() -> Path:
    """The wheels the functions' environments are built from."""
    path = Path(os.environ.get("RUNNERPOOL_WHEELHOUSE") or Path(sys.prefix) / "wheelhouse")
    if not any(path.glob("fdk-*.whl")):
        pytest.fail(f"no fdk wheel in {path}: run `make install` (it fills the wheelhouse)")
    return path


def fdk_runner_command(
    bundles: Path, state: Path, *options: str, global_options: tuple[str, ...] = ()
) -> list[str]:
    """The ``runnerpool`` arguments of an FDK runner at log level warning on a free port.

    It serves ``bundles``, builds environments from the wheelhouse into ``state``; ``options``
    follow the ``runner`` command, ``global_options`` precede it.
    """
    return [
        *("--log-level", "warning", *global_options, "runner", "--port", "0"),
        *("--bundles", str(bundles), "--wheelhouse", str(wheelhouse()), "--state-dir", str(state)),
        *options,
    ]


@pytest.fixture(scope="session")
def environments_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory of environments for the whole session: each is built once."""
    return tmp_path_factory.mktemp("envs")


@pytest.fixture(scope="session")
def bundles_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples and the test bundles, side by side."""
    root = tmp_path_factory.mktemp("bundles")
    for bundle in EXAMPLES.iterdir():
        if bundle.is_dir():
            shutil.copytree(bundle, root / bundle.name)
    for name, text in TEST_BUNDLES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture
def make_executor(bundles_root: Path, environments_root: Path) -> Callable[..., FdkExecutor]:
    """Build executors over the test bundles (closed by the test, or by :func:`executor`)."""

    def make(**options: Any) -> FdkExecutor:
        environments = Environments(environments_root, find_links=[wheelhouse()])
        # These tests tell processes apart by their host pids, which a sandbox hides from the
        # function; test_sandbox.py runs functions in the sandbox (the default).
        options.setdefault("sandbox", None)
        return FdkExecutor(Bundles(bundles_root), environments, **options)

    return make


@pytest.fixture
async def executor(make_executor: Callable[..., FdkExecutor]) -> AsyncIterator[FdkExecutor]:
    """An executor with Fn's defaults; closed after the test."""
    executor = make_executor()
    try:
        yield executor
    finally:
        await executor.aclose()


class Writer:
    """A response writer that keeps what it is given."""

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.status: int | None = None
        self.body = b""

    def add_header(self, name: str, value: str) -> None:
        self.headers.append((name, value))

    def write_header(self, status_code: int) -> None:
        self.status = status_code

    async def write(self, data: bytes) -> None:
        self.body += data

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)


class Log:
    """A call's stderr."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


def model(image: str, **fields: Any) -> Call:
    """A call of a bundle, as a load balancer would send it."""
    fields.setdefault("id", f"call-{time.monotonic_ns()}")
    fields.setdefault("app_id", "app")
    fields.setdefault("fn_id", image)
    fields.setdefault("timeout", 30)
    fields.setdefault("memory", 128)
    return Call(image=image, **fields)


async def run(
    executor: FdkExecutor,
    call: Call,
    body: bytes = b"",
    capacity: Capacity | None = None,
) -> tuple[Writer, Log]:
    """Admit and run one call as a runner does; raise what the executor raises."""
    capacity = Capacity() if capacity is None else capacity
    ticket = executor.admit(call, None, {}, capacity)
    assert ticket is not None, "the call was refused (NACK)"
    writer, log = Writer(), Log()
    try:
        await executor.execute(
            Execution(
                model=call,
                extensions={},
                slot_key=None,
                body=_body(body),
                response=writer,
                stderr=log,
                deadline=time.monotonic() + call.timeout if call.timeout else None,
                detached=False,
                admission=ticket,
            )
        )
    finally:
        ticket.release()
    return writer, log


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        # Gone before the open, or reaped between the open and the read (ESRCH).
        return False


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait until ``condition()`` holds: processes dying have no event to wait on."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - polling an outside process
            await asyncio.sleep(0.02)
