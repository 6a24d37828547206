"""FDK functions through the whole stack: load balancer → runner → hot FDK process.

Real ``runnerpool lb`` and ``runnerpool runner --bundles`` processes on 127.0.0.1 (port 0),
the runner running the example and test bundles under Fn's real ``fdk`` package. The runner
gets ``TMPDIR`` pointing at a directory of the test, so its ``runnerpool-iofs-*`` directory
(the processes' sockets) can be watched, and its children are found by parent pid in
``/proc``.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fdk.conftest import alive, fdk_runner_command, until
from tests.lb.conftest import JSON_ERROR, Process, Processes, eventually, totals, wait_active

#: An ``async def`` function, so that two calls in one process *would* overlap: it says which
#: process ran the call, when, and how many calls that process ever ran at once. The body is
#: the seconds to sleep, or ``raise``.
NAPPER = """\
import asyncio, io, json, os, time

in_flight = 0
most = 0

async def handler(ctx, data: io.BytesIO = None):
    global in_flight, most
    raw = data.getvalue() if data is not None else b""
    if raw == b"raise":
        raise RuntimeError(f"failing in process {os.getpid()}")
    in_flight += 1
    most = max(most, in_flight)
    start = time.time()
    try:
        await asyncio.sleep(float(raw or b"0"))
    finally:
        in_flight -= 1
    return json.dumps({"pid": os.getpid(), "start": start, "end": time.time(), "most": most})
"""

#: The load balancer's registry: one function per bundle the tests call.
REGISTRY = """\
[[apps]]
name = "e2e"
config = { GREETING = "hi" }

[[functions]]
id = "echo"
name = "echo"
app = "e2e"
image = "echo"

[[functions]]
id = "whoami"
name = "whoami"
app = "e2e"
image = "whoami"

[[functions]]
id = "napper"
name = "napper"
app = "e2e"
image = "napper"
timeout = 10

[[functions]]
id = "fail"
name = "fail"
app = "e2e"
image = "fail"

[[functions]]
id = "broken"
name = "broken"
app = "e2e"
image = "broken"

[[functions]]
id = "hungry"
name = "hungry"
app = "e2e"
image = "hungry"
memory = 64

[[functions]]
id = "brief"
name = "brief"
app = "e2e"
image = "napper"
timeout = 1
idle_timeout = 1

[[functions]]
id = "big"
name = "big"
app = "e2e"
image = "big"

[[functions]]
id = "sluggish"
name = "sluggish"
app = "e2e"
image = "sluggish"
"""

#: The runner's limits in these tests: small enough to reach, large enough for the others.
MAX_RESPONSE = 100_000
INIT_TIMEOUT = 2.0


@dataclass
class Stack:
    """A load balancer in front of one FDK runner.

    Attributes:
        runner: The runner process.
        lb: The load balancer process.
        tmpdir: The runner's ``TMPDIR``.
    """

    runner: Process
    lb: Process
    tmpdir: Path

    def client(self) -> httpx.AsyncClient:
        """A client of the load balancer."""
        return httpx.AsyncClient(base_url=self.lb.address, timeout=20)

    def iofs_dirs(self) -> list[Path]:
        """The runner's socket directories under its ``TMPDIR``."""
        return sorted(self.tmpdir.glob("runnerpool-iofs-*"))

    def function_pids(self) -> set[int]:
        """The runner's live children: its function processes (and any uv at work)."""
        return {pid for pid in children(self.runner.popen.pid) if alive(pid)}


def children(parent: int) -> set[int]:
    """The ids of the processes whose parent is ``parent``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == parent:
            found.add(int(entry.name))
    return found


@pytest.fixture(scope="module")
def e2e_bundles(bundles_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test bundles, plus ``napper``."""
    root = tmp_path_factory.mktemp("e2e-bundles") / "bundles"
    shutil.copytree(bundles_root, root)
    (root / "napper").mkdir()
    (root / "napper" / "func.py").write_text(NAPPER)
    return root


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runners' state directory: the functions' environment is built once per module."""
    return tmp_path_factory.mktemp("e2e-state")


def start_stack(
    processes: Processes,
    bundles: Path,
    state: Path,
    tmpdir: Path,
    runner_args: tuple[str, ...] = (),
) -> Stack:
    """Start an FDK runner (with ``TMPDIR=tmpdir``) and a load balancer in front of it.

    The runner answers bodies up to ``MAX_RESPONSE`` bytes and gives new processes
    ``INIT_TIMEOUT`` seconds to listen; ``runner_args`` are added to its command line.
    """
    runner = processes.start(
        fdk_runner_command(
            bundles,
            state,
            *("--max-response-size", str(MAX_RESPONSE), "--init-timeout", str(INIT_TIMEOUT)),
            # These tests tell processes apart by their host pids, which a sandbox hides from
            # the function; tests/fdk/test_sandbox.py and test_leftovers.py run the sandbox.
            "--no-sandbox",
            *runner_args,
        ),
        "runner listening on ",
        env={"TMPDIR": str(tmpdir)},
    )
    config = processes.config(REGISTRY, "e2e.toml")
    lb = processes.lb([runner.address], placer_config=None, log_level="warning", config=config)
    return Stack(runner, lb, tmpdir)


@contextmanager
def short_tmpdir() -> Iterator[Path]:
    """A directory under ``/tmp`` for a runner's ``TMPDIR``, removed afterwards.

    Short on purpose: pytest's directories are deep, and a socket path must fit in 107 bytes.
    """
    path = Path(tempfile.mkdtemp(prefix="rp-e2e-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(
    tmp_path_factory: pytest.TempPathFactory, e2e_bundles: Path, state_dir: Path
) -> Iterator[Stack]:
    """One load balancer and runner shared by the module's call tests."""
    processes = Processes(tmp_path_factory.mktemp("e2e-processes"))
    try:
        with short_tmpdir() as tmpdir:
            started = start_stack(processes, e2e_bundles, state_dir, tmpdir)
            yield started
            stop_runner(started)
    finally:
        processes.close()


@pytest.fixture
def own_stack(tmp_path: Path, e2e_bundles: Path, state_dir: Path) -> Iterator[Stack]:
    """A load balancer and runner of the test's own, to stop."""
    processes = Processes(tmp_path)
    try:
        with short_tmpdir() as tmpdir:
            started = start_stack(processes, e2e_bundles, state_dir, tmpdir)
            yield started
            stop_runner(started)
    finally:
        processes.close()


def stop_runner(stack: Stack) -> None:
    """Stop the runner with SIGTERM, so that it stops its function processes.

    ``Processes.close`` SIGKILLs what still runs, which would leave them behind: they run in
    sessions of their own.
    """
    popen = stack.runner.popen
    if popen.poll() is None:
        popen.send_signal(signal.SIGTERM)
        popen.wait(15)


def message(response: httpx.Response) -> str:
    """The message of an Fn error response."""
    assert response.headers["content-type"] == JSON_ERROR
    text: str = response.json()["message"]
    return text


async def nap(
    client: httpx.AsyncClient, seconds: float, function: str = "napper"
) -> dict[str, Any]:
    """Call ``napper`` (or another function of its image); return what it answered."""
    response = await client.post(f"/invoke/{function}", content=str(seconds).encode())
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


class TestCalls:
    async def test_echo_round_trip(self, stack: Stack) -> None:
        """The echo function answers the body and content type; its own header comes back."""
        async with stack.client() as client:
            response = await client.post(
                "/invoke/echo", content=b"hello, fdk", headers={"Content-Type": "text/x-demo"}
            )
        assert response.status_code == 200, response.text
        assert response.content == b"hello, fdk"
        assert response.headers["content-type"] == "text/x-demo"
        assert response.headers["x-echo-call-id"] == response.headers["fn-call-id"]
        assert response.headers["fn-fdk-version"].startswith("fdk-python/")

    async def test_request_headers_reach_the_function(self, stack: Stack) -> None:
        """The call's headers, Fn-Call-Id and Fn-Deadline reach the function; so do FN_* vars."""
        async with stack.client() as client:
            response = await client.post(
                "/invoke/whoami", content=b"{}", headers={"X-Greeting": "hello there"}
            )
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        seen = response.json()
        headers = {name.lower(): value for name, value in seen["headers"].items()}
        assert headers["x-greeting"] == "hello there"
        assert headers["fn-call-id"] == response.headers["fn-call-id"]
        assert headers["fn-deadline"].endswith("Z")
        assert seen["env"]["FN_FN_ID"] == "whoami"
        assert seen["env"]["FN_APP_ID"] == "e2e"
        assert seen["env"]["FN_FORMAT"] == "http-stream"
        assert seen["env"]["FN_LISTENER"].startswith(f"unix:{stack.tmpdir}/runnerpool-iofs-")

    async def test_second_call_reuses_the_hot_process(self, stack: Stack) -> None:
        """Two calls in a row run in the same process, which stays up between them."""
        async with stack.client() as client:
            first = (await client.post("/invoke/whoami")).json()["pid"]
            second = (await client.post("/invoke/whoami")).json()["pid"]
        assert first == second
        assert alive(first)
        assert first in stack.function_pids()

    async def test_concurrent_calls_start_more_processes(self, stack: Stack) -> None:
        """Overlapping calls run in distinct processes, never two at once in one process."""
        async with stack.client() as client:
            first = await asyncio.gather(*(nap(client, 1.0) for _ in range(3)))
            # Long enough that no process frees up before the fourth one is ready (a call
            # waiting for its own process would take a freed one, as in Fn).
            second = await asyncio.gather(*(nap(client, 1.0) for _ in range(4)))
        answers = first + second
        assert len({answer["pid"] for answer in first}) == 3
        # The second wave reuses the three idle processes and starts one more.
        assert {answer["pid"] for answer in first} < {answer["pid"] for answer in second}
        assert len({answer["pid"] for answer in second}) == 4
        assert all(answer["most"] == 1 for answer in answers)
        for one in answers:
            for other in answers:
                if one is not other and one["pid"] == other["pid"]:
                    assert one["end"] <= other["start"] or other["end"] <= one["start"]

    async def test_function_raising_is_502_and_the_process_is_kept(self, stack: Stack) -> None:
        """A function raising gives 502 with its text; the same process takes the next call."""
        async with stack.client() as client:
            first = await client.post("/invoke/napper", content=b"raise")
            second = await client.post("/invoke/napper", content=b"raise")
        assert (first.status_code, second.status_code) == (502, 502)
        assert message(first).startswith("function failed: failing in process ")
        assert message(first) == message(second)
        assert alive(int(message(first).rsplit(" ", 1)[1]))

    async def test_failing_example_is_502_with_its_error(self, stack: Stack) -> None:
        """The ``fail`` example's RuntimeError text comes back in the 502's message."""
        async with stack.client() as client:
            response = await client.post("/invoke/fail")
        assert response.status_code == 502
        assert message(response) == "function failed: this function always fails"

    async def test_broken_func_py_is_502_with_the_syntax_error(self, stack: Stack) -> None:
        """A func.py that does not compile gives 502 naming the syntax error, on every call."""
        async with stack.client() as client:
            responses = [await client.post("/invoke/broken") for _ in range(2)]
        for response in responses:
            assert response.status_code == 502
            assert "expected ':'" in message(response)
            assert "line 1" in message(response)

    async def test_memory_limit_is_fn_out_of_memory(self, stack: Stack) -> None:
        """A 64 MB function holding 200 MB gets Fn's 502 "container out of memory"."""
        async with stack.client() as client:
            response = await client.post("/invoke/hungry", content=b"200")
            fits = await client.post("/invoke/hungry", content=b"16")
        assert response.status_code == 502
        assert message(response).startswith("container out of memory")
        assert (fits.status_code, fits.content) == (200, b"held 16 MB")

    async def test_detached_call_runs_in_a_hot_process(self, stack: Stack) -> None:
        """A detached call is answered 202 at its start, then runs to its end on the runner."""
        address = [stack.runner.address]
        _, handled, _ = await totals(address)
        async with stack.client() as client:
            response = await client.post(
                "/invoke/napper", content=b"0.5", headers={"Fn-Invoke-Type": "detached"}
            )
        assert response.status_code == 202
        # Answered while the function sleeps; it then ends, handled by the runner.
        assert (await totals(address))[2] == 1

        async def ended() -> bool:
            return (await totals(address))[1] == handled + 1

        await eventually(ended, what="the detached call handled")


class TestFailuresAndLimits:
    async def test_timeout_is_504_and_the_process_is_gone(self, stack: Stack) -> None:
        """A call past its function's timeout is 504 "Timed out"; its process is killed."""
        before = stack.function_pids()
        async with stack.client() as client:
            response = await client.post("/invoke/brief", content=b"5")
        assert response.status_code == 504
        assert message(response) == "Timed out"
        await until(lambda: stack.function_pids() <= before)

    async def test_idle_timeout_stops_the_process(self, stack: Stack) -> None:
        """A process idle for its function's idle_timeout (1 s here) is stopped."""
        async with stack.client() as client:
            pid = (await nap(client, 0, "brief"))["pid"]
        assert alive(pid)
        await until(lambda: not alive(pid), 5)

    async def test_process_exiting_mid_call_is_replaced(self, stack: Stack) -> None:
        """A process exiting mid-call is 502 with its exit code; the next call gets another."""
        async with stack.client() as client:
            first = await client.post("/invoke/fail")
            before = stack.function_pids()
            exited = await client.post("/invoke/fail", content=b"exit")
            assert exited.status_code == 502
            assert message(exited) == "container exit code 3"
            await until(lambda: not before <= stack.function_pids())
            again = await client.post("/invoke/fail")
        assert (first.status_code, again.status_code) == (502, 502)
        assert message(again) == "function failed: this function always fails"

    async def test_oversized_response_is_502(self, stack: Stack) -> None:
        """A response over the runner's limit is 502; the process, mid-answer, is killed."""
        async with stack.client() as client:
            fits = await client.post("/invoke/big", content=str(MAX_RESPONSE).encode())
            before = stack.function_pids()
            over = await client.post("/invoke/big", content=str(MAX_RESPONSE + 1).encode())
        assert (fits.status_code, len(fits.content)) == (200, MAX_RESPONSE)
        assert over.status_code == 502
        assert message(over) == "function response body too large"
        await until(lambda: len(stack.function_pids() & before) < len(before))

    async def test_init_timeout_is_504(self, stack: Stack) -> None:
        """A process not listening within the runner's init timeout is Fn's 504."""
        async with stack.client() as client:
            response = await client.post("/invoke/sluggish")
        assert response.status_code == 504
        assert message(response).startswith("Container initialization timed out")

    async def test_eviction_makes_room_for_another_function(
        self, tmp_path: Path, e2e_bundles: Path, state_dir: Path
    ) -> None:
        """A runner with room for one process evicts another function's idle process.

        The new call runs instead of being refused.
        """
        processes = Processes(tmp_path)
        try:
            with short_tmpdir() as tmpdir:
                small = start_stack(
                    processes,
                    e2e_bundles,
                    state_dir,
                    tmpdir,
                    ("--max-memory", str(128 * 1024 * 1024)),
                )
                async with small.client() as client:
                    echo = await client.post("/invoke/echo", content=b"x")
                    [echo_pid] = small.function_pids()
                    who = await client.post("/invoke/whoami")
                    await until(lambda: not alive(echo_pid))
                    assert small.function_pids() == {who.json()["pid"]}
                assert (echo.status_code, who.status_code) == (200, 200)
                stop_runner(small)
        finally:
            processes.close()


class TestShutdown:
    async def test_nothing_left_after_the_runner_stops(self, own_stack: Stack) -> None:
        """SIGTERM stops every function process and removes the socket directory."""
        async with own_stack.client() as client:
            pids = {
                answer["pid"] for answer in await asyncio.gather(nap(client, 0.6), nap(client, 0.6))
            }
            assert (await client.post("/invoke/echo", content=b"x")).status_code == 200
        assert len(pids) == 2
        assert pids <= own_stack.function_pids()
        (iofs,) = own_stack.iofs_dirs()
        assert len(list(iofs.iterdir())) == 3  # one socket directory per process
        started = own_stack.function_pids()
        own_stack.runner.signal(signal.SIGTERM)
        assert await own_stack.runner.wait() == 0
        assert not any(alive(pid) for pid in started)
        assert own_stack.iofs_dirs() == []

    async def test_sigterm_mid_call_drains_then_leaves_nothing(self, own_stack: Stack) -> None:
        """A call in flight at SIGTERM finishes with 200; then processes and sockets are gone."""
        runner = own_stack.runner
        async with own_stack.client() as client:
            idle = (await client.post("/invoke/whoami")).json()["pid"]
            in_flight = asyncio.create_task(nap(client, 1.0))
            await wait_active([runner.address], 1)
            # Admitted is not started: wait for the in-flight call's own process to exist.
            await until(lambda: len(own_stack.function_pids()) == 2, seconds=15)
            started = own_stack.function_pids()
            runner.signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            assert runner.popen.poll() is None  # draining: the call is still in flight
            answer = await in_flight
        assert answer["pid"] in started
        assert answer["end"] - answer["start"] >= 1.0
        assert await runner.wait() == 0
        assert idle in started
        assert not any(alive(pid) for pid in started)
        assert own_stack.iofs_dirs() == []

    async def test_sigkilled_runner_takes_its_functions_along(self, own_stack: Stack) -> None:
        """A runner killed outright leaves no function process running: each dies with it."""
        async with own_stack.client() as client:
            answers = await asyncio.gather(nap(client, 0.6), nap(client, 0.6))
        pids = {answer["pid"] for answer in answers}
        assert len(pids) == 2
        own_stack.runner.signal(signal.SIGKILL)
        await own_stack.runner.wait()
        async with asyncio.timeout(5):
            while any(alive(pid) for pid in pids):  # noqa: ASYNC110 - other processes
                await asyncio.sleep(0.02)
