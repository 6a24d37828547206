"""A hostile function against the sandbox, through a real runner: every escape fails.

The ``spy`` bundle tries what the issue's attacker did: read another app's secret from
``/proc``, reach another function's socket, write bundles and environments, signal the runner,
leave a ``setsid`` child behind, fork without bound, and reach the network where its function
has it turned off. A normal function of another app runs in the same runner throughout.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from runnerpool import APIError, BufferedCall, Call, GrpcRunner
from runnerpool.fdk import Bundles, Environments, FdkExecutor
from runnerpool.fdk._cgroups import MAX_PIDS
from runnerpool.fdk._sandbox import NETWORK_ANNOTATION, Sandbox
from runnerpool.runner import RunnerServer, RunnerService

from .conftest import EXAMPLES, until, wheelhouse

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux sandboxes")

SECRET = f"victim-secret-{uuid.uuid4().hex}"

SPY = """\
import json, os, signal, socket, subprocess, time

def attempt(action, *args):
    try:
        result = action(*args)
    except Exception as exc:
        return type(exc).__name__
    return "ok" if result is None else result

def read_secrets(secret):
    found = []
    for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
        try:
            with open(f"/proc/{pid}/environ", "rb") as environ:
                if secret.encode() in environ.read():
                    found.append(pid)
        except OSError:
            pass
    return found

def connect_unix(path):
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(path)

def connect_tcp(port):
    socket.create_connection(("127.0.0.1", port), timeout=2).close()

def write(path):
    with open(path, "w") as file:
        file.write("pwned")

def fork_all(limit):
    children, error = [], None
    for _ in range(limit):
        try:
            pid = os.fork()
        except OSError as exc:
            error = type(exc).__name__
            break
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        children.append(pid)
    return {"forked": len(children), "error": error}

def handler(ctx, data=None):
    order = json.loads(data.getvalue())
    action = order["action"]
    if action == "whoami":
        with open("/proc/self/status") as status:
            caps = [l.split()[1] for l in status if l.startswith(("CapEff", "CapPrm", "CapBnd"))]
        answer = {"uid": os.getuid(), "gid": os.getgid(), "caps": caps,
                  "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
                  "hostname": socket.gethostname(), "root": sorted(os.listdir("/"))}
    elif action == "environ":
        answer = {"found": read_secrets(order["secret"])}
    elif action == "sockets":
        answer = {"list": attempt(os.listdir, order["iofs_root"]),
                  "connect": attempt(connect_unix, order["socket"])}
    elif action == "write":
        answer = {path: attempt(write, path) for path in order["paths"]}
    elif action == "signal":
        answer = {"kill": attempt(os.kill, order["pid"], 0),
                  "cont": attempt(os.kill, order["pid"], signal.SIGCONT),
                  "group": attempt(os.killpg, order["pid"], 0)}
    elif action == "setsid":
        subprocess.Popen(["sleep", order["token"]], start_new_session=True)
        time.sleep(0.2)
        os._exit(3)
    elif action == "fork":
        answer = fork_all(order["limit"])
    elif action == "connect":
        answer = {"connect": attempt(connect_tcp, order["port"])}
    elif action == "kill-self":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "big":
        return "x" * order["size"]  # fits; the FDK's copies while answering do not
    return json.dumps(answer)
"""

VICTIM = """\
import os

def handler(ctx, data=None):
    return "victim of app " + os.environ["FN_APP_ID"]
"""


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    """The host's sandbox; on Linux it must be there (make install installs bubblewrap)."""
    return Sandbox.detect()


@pytest.fixture
def hostile_root(tmp_path: Path) -> Path:
    """Bundles: the spy, its victim, and the examples (hungry among them)."""
    root = tmp_path / "bundles"
    for bundle in EXAMPLES.iterdir():
        if bundle.is_dir():
            shutil.copytree(bundle, root / bundle.name)
    for name, text in {"spy": SPY, "victim": VICTIM}.items():
        (root / name).mkdir(parents=True)
        (root / name / "func.py").write_text(text)
    return root


class Runner:
    """A real runner over gRPC with sandboxed FDK functions, and a client of it."""

    def __init__(self, executor: FdkExecutor, server: RunnerServer) -> None:
        self.executor = executor
        self.server = server
        self.client = GrpcRunner(server.address)

    async def call(
        self, image: str, body: bytes = b"", *, app: str = "evil", **fields: Any
    ) -> tuple[int | None, bytes]:
        """Run one call; return its status and body (raises the runner's error)."""
        fields.setdefault("timeout", 20)
        fields.setdefault("memory", 128)
        model = Call(
            id=f"call-{uuid.uuid4().hex}", app_id=app, fn_id=f"{app}-{image}", image=image, **fields
        )
        call = BufferedCall(model, body=body)
        await self.client.try_exec(call)
        return call.response_writer.status_code, bytes(call.response_writer.body)

    async def spy(self, order: dict[str, Any], **fields: Any) -> Any:
        """Give the spy an order; return its JSON answer."""
        status, body = await self.call("spy", json.dumps(order).encode(), **fields)
        assert status == 200, body
        return json.loads(body)

    async def victim_works(self) -> None:
        """The victim still answers: the runner keeps serving, other functions are unharmed."""
        secret = {"SECRET": SECRET}
        assert await self.call("victim", app="victim", config=secret) == (
            200,
            b"victim of app victim",
        )


@pytest.fixture
async def runner(
    hostile_root: Path, environments_root: Path, sandbox: Sandbox
) -> AsyncIterator[Runner]:
    """A runner serving the hostile bundles in sandboxes, on 127.0.0.1."""
    executor = FdkExecutor(
        Bundles(hostile_root),
        Environments(environments_root, find_links=[wheelhouse()]),
        sandbox=sandbox,
        init_timeout=30,  # the machine may be loaded: a slow start is not what is tested here
    )
    server = RunnerServer(RunnerService(executor), host="127.0.0.1", port=0, drain_timeout=5)
    await server.start()
    runner = Runner(executor, server)
    try:
        await runner.victim_works()
        yield runner
        await runner.victim_works()
    finally:
        await runner.client.aclose()
        await server.aclose()


class TestEscapes:
    async def test_runs_as_its_own_unprivileged_uid_seeing_only_itself(
        self, runner: Runner
    ) -> None:
        """The function has a uid of its app's, no capabilities, and sees only its own processes."""
        spy = await runner.spy({"action": "whoami"})
        victim = runner.executor.sandbox
        assert victim is not None
        assert spy["uid"] == victim.uid("evil") != victim.uid("victim")
        assert spy["uid"] >= 200_000
        assert spy["gid"] == spy["uid"]
        assert set(spy["caps"]) == {"0000000000000000"}
        assert spy["pids"] == [1, 2]  # the sandbox's init, and the function
        assert spy["hostname"] == "fn"
        system = {"bin", "dev", "etc", "lib", "lib32", "lib64", "proc", "sbin", "tmp", "usr"}
        # The interpreter's own installation (e.g. pyenv's, under /root), read-only.
        interpreter = Path(sys.base_prefix).parts[1]
        assert set(spy["root"]) <= system | {"function", "python", "runnerpool", interpreter}

    async def test_cannot_read_another_functions_environment(self, runner: Runner) -> None:
        """The victim's secret (its config, in its environment) is in no /proc the spy sees."""
        assert (await runner.spy({"action": "environ", "secret": SECRET}))["found"] == []

    async def test_cannot_reach_another_functions_socket(self, runner: Runner) -> None:
        """Neither the runner's socket directories nor the victim's socket are there to reach."""
        [victim] = runner.executor.pool.processes  # only the victim has run yet
        order = {
            "action": "sockets",
            "iofs_root": str(runner.executor.iofs_root),
            "socket": victim.socket_path,
        }
        answer = await runner.spy(order)
        assert answer == {"list": "FileNotFoundError", "connect": "FileNotFoundError"}

    async def test_cannot_write_bundles_or_environments(
        self, runner: Runner, hostile_root: Path
    ) -> None:
        """Its own bundle and environment are read-only; others' are not there at all."""
        environment = runner.executor.environments.root
        paths = [
            "/function/pwned",
            "/python/pwned",
            "/python/lib/pwned",
            str(hostile_root / "victim" / "pwned"),
            str(environment / "pwned"),
            "/usr/pwned",
        ]
        answer = await runner.spy({"action": "write", "paths": paths})
        assert "ok" not in answer.values(), answer
        for root in (hostile_root, environment):
            assert not list(root.rglob("pwned"))

    async def test_cannot_signal_the_runner(self, runner: Runner) -> None:
        """The runner's pid (and process group) do not exist inside the sandbox."""
        answer = await runner.spy({"action": "signal", "pid": os.getpid()})
        assert answer == {
            "kill": "ProcessLookupError",
            "cont": "ProcessLookupError",
            "group": "ProcessLookupError",
        }

    async def test_setsid_child_ends_with_its_process(self, runner: Runner) -> None:
        """A child started in its own session dies when the function's process exits."""
        token = f"{1000 + uuid.uuid4().int % 1000}.{uuid.uuid4().int % 10**6}"
        with pytest.raises(APIError, match=r"container exit code 3"):
            await runner.spy({"action": "setsid", "token": token})

        def survivors() -> list[str]:
            found = []
            for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
                try:
                    if token.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                        found.append(pid)
                except OSError:
                    pass
            return found

        # Dying takes the kernel a moment: wait for it, generously.
        await until(lambda: not survivors(), 10.0)

    async def test_fork_without_bound_is_held(self, runner: Runner) -> None:
        """Forking stops at Fn's process limit, and the runner goes on serving."""
        answer = await runner.spy({"action": "fork", "limit": 200})
        assert answer["forked"] < MAX_PIDS
        assert answer["error"] == "BlockingIOError"

    async def test_interpreter_variables_in_config_are_refused(self, runner: Runner) -> None:
        """A TryCall whose config steers the interpreter gets a clear 400, and nothing runs."""
        for config in (
            {"PYTHONWARNINGS": "all:0:antigravity.x:0:0", "BROWSER": "/bin/sh -c 'touch x' #%s"},
            {"LD_PRELOAD": "/tmp/evil.so"},
            {"BASH_ENV": "/tmp/evil.sh"},
        ):
            with pytest.raises(APIError, match=r"invalid config: .* is refused") as caught:
                await runner.call("spy", b"{}", config=config)
            assert caught.value.status_code == 400

    async def test_network_follows_the_functions_annotation(self, runner: Runner) -> None:
        """With network on (the default) the spy reaches the runner's port; annotated off, not."""
        port = int(runner.server.address.rsplit(":", 1)[1])
        order = {"action": "connect", "port": port}
        assert await runner.spy(order) == {"connect": "ok"}
        off = {NETWORK_ANNOTATION: "false"}
        answer = await runner.spy(order, annotations=off)
        assert answer["connect"] in ("ConnectionRefusedError", "OSError", "TimeoutError")


class TestLimitsAndExits:
    async def test_out_of_memory_is_fns_error(self, runner: Runner) -> None:
        """A function over its memory (a cgroup, where the host has one) gets Fn's OOM 502."""
        with pytest.raises(APIError, match="container out of memory") as caught:
            await runner.call("hungry", b"", memory=64)
        assert caught.value.status_code == 502

    async def test_out_of_memory_while_answering_is_fns_error(self, runner: Runner) -> None:
        """An answer that fits the handler but not the FDK's copies of it: Fn's OOM 502 too."""
        with pytest.raises(APIError, match="container out of memory"):
            await runner.spy({"action": "big", "size": 70 * 1024 * 1024}, memory=128)

    async def test_killed_by_a_signal_reports_that_signal(self, runner: Runner) -> None:
        """A function SIGKILLed (not for memory) reports exit code 137 and the signal."""
        with pytest.raises(APIError, match=r"container exit code 137 \(killed by SIGKILL\)"):
            await runner.spy({"action": "kill-self"})


class TestWithoutSandbox:
    async def test_missing_bubblewrap_is_said_loudly_and_in_status(
        self,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Without bubblewrap, the default executor logs an error and its status says why."""
        monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
        executor = FdkExecutor(Bundles(tmp_path), Environments(tmp_path / "envs"))
        assert executor.sandbox is None
        assert executor.report()["sandbox"].startswith("UNAVAILABLE: bubblewrap (bwrap) is not")
        assert any(r.levelname == "ERROR" and "NO SANDBOX" in r.message for r in caplog.records)
        await executor.aclose()

    async def test_no_sandbox_is_explicit(self, tmp_path: Path) -> None:
        """sandbox=None runs plain processes, and the status says the sandbox is off."""
        executor = FdkExecutor(Bundles(tmp_path), Environments(tmp_path / "envs"), sandbox=None)
        assert executor.report()["sandbox"] == "off"
        await executor.aclose()

    async def test_status_describes_the_sandbox(self, sandbox: Sandbox, tmp_path: Path) -> None:
        """With the sandbox, the status says what it holds."""
        executor = FdkExecutor(Bundles(tmp_path), Environments(tmp_path / "envs"), sandbox=sandbox)
        assert executor.report()["sandbox"].startswith("bubblewrap: mount, pid, ipc, uts")
        await executor.aclose()
