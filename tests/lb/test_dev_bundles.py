"""`runnerpool dev --bundles`: your own FDK functions, edited while they are served."""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from runnerpool.cli import main
from runnerpool.fdk import Bundles
from tests.fdk.conftest import wheelhouse
from tests.lb.conftest import Process, Processes, eventually
from tests.lb.test_cli_lb import alive, children

#: The test's own functions: none of them is an example.
BUNDLES = {
    "greet/func.py": """\
import os

def handler(ctx, data=None):
    return os.environ["GREETING"] + " v1"
""",
    "greet/func.yaml": """\
schema_version: 20180708
name: greeter
version: 0.0.1
runtime: python
memory: 64
timeout: 10
config:
  GREETING: hi
""",
    # A user status other than 200, 502 or 504: the FDK sends 200, and /invoke answers it.
    "teapot/func.py": """\
from fdk import response

def handler(ctx, data=None):
    return response.Response(ctx, response_data="short and stout", status_code=418)
""",
    # Says which Python environment it runs in.
    "envinfo/func.py": """\
import os
import sys

def handler(ctx, data=None):
    # Which environment runs it: in its sandbox the path is always /python, so its inode.
    return str(os.stat(sys.prefix).st_ino)
""",
}


def write(root: Path, files: dict[str, str]) -> None:
    """Write files under ``root``."""
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


@pytest.fixture
def bundles(tmp_path: Path) -> Path:
    """A folder of the test's bundles."""
    root = tmp_path / "functions"
    write(root, BUNDLES)
    return root


@pytest.fixture
def dev_env(tmp_path: Path) -> dict[str, str]:
    """Where `dev`'s runners find the fdk wheel and keep environments (nothing downloaded)."""
    return {
        "RUNNERPOOL_WHEELHOUSE": str(wheelhouse()),
        "RUNNERPOOL_STATE_DIR": str(tmp_path / "state"),
    }


def start_dev(processes: Processes, env: dict[str, str], functions: int, *args: str) -> Process:
    """Start `runnerpool dev --port 0 ARGS` serving ``functions`` functions; return it."""
    return processes.start(
        ["dev", "--port", "0", *args], "runnerpool dev: ", ready_lines=6 + functions, env=env
    )


def base_url(dev: Process) -> str:
    """The load balancer's URL, from the banner."""
    found = re.search(r"^\s+load balancer\s+(\S+)", dev.address, re.MULTILINE)
    assert found is not None
    return found[1]


@pytest.fixture
def stop(processes: Processes) -> Iterator[list[Process]]:
    """`dev` processes to stop with SIGINT at the end, their runners checked gone."""
    started: list[Process] = []
    yield started
    for dev in started:
        runners = children(dev.popen.pid)
        if dev.popen.poll() is None:
            dev.signal(signal.SIGINT)
            assert dev.popen.wait(15) == 0
        for pid in runners:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


class TestDevBundles:
    async def test_serves_your_functions_and_each_edit_on_the_next_call(
        self, processes: Processes, bundles: Path, dev_env: dict[str, str], stop: list[Process]
    ) -> None:
        """Only the folder's functions are served; an edit, a new folder, new requirements apply.

        Each step waits (bounded) for the state it checks: the watcher reacts within moments.
        """
        dev = start_dev(processes, dev_env, 3, "--bundles", str(bundles))
        stop.append(dev)
        url = base_url(dev)
        assert re.search(r"^\s*functions\s+envinfo, greeter, teapot \(from ", dev.address, re.M)
        curls = re.findall(r"^\s*curl -X POST (\S+) -d ''$", dev.address, re.MULTILINE)
        assert curls == [f"{url}/invoke/{name}" for name in ("envinfo", "greeter", "teapot")]
        assert "hello" not in dev.address
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            first = await client.post("/invoke/greeter")
            assert (first.status_code, first.text) == (200, "hi v1")
            assert (await client.post("/invoke/hello")).status_code == 404
            # Fn's flattening: a user status other than 200, 502 or 504 is a 200 on /invoke.
            teapot = await client.post("/invoke/teapot")
            assert (teapot.status_code, teapot.text) == (200, "short and stout")

            # An edit to func.py: the next calls are answered by the new code.
            (bundles / "greet" / "func.py").write_text(BUNDLES["greet/func.py"].replace("v1", "v2"))
            answers: set[str] = set()

            async def new_code() -> bool:
                response = await client.post("/invoke/greeter")
                answers.add(response.text)
                return response.text == "hi v2"

            await eventually(new_code, within=30, what="the edited greeter answering")
            assert answers <= {"hi v1", "hi v2"}
            # No later call reaches a process of the old files.
            later = [(await client.post("/invoke/greeter")).text for _ in range(6)]
            assert later == ["hi v2"] * 6
            assert "Function greeter changed" in dev.stderr()

            # A new folder is a new function.
            assert (await client.post("/invoke/later")).status_code == 404
            write(bundles, {"later/func.py": "def handler(ctx, data=None):\n    return 'new'\n"})

            async def served() -> bool:
                return (await client.post("/invoke/later")).text == "new"

            await eventually(served, within=30, what="the new bundle being served")

            # New requirements: a new environment, built from the local wheelhouse.
            before = (await client.post("/invoke/envinfo")).text
            requirements = "iso8601==0.1.12\n"
            (bundles / "envinfo" / "requirements.txt").write_text(requirements)
            key = Bundles(bundles).resolve("envinfo").environment_key
            new_env = Path(dev_env["RUNNERPOOL_STATE_DIR"]) / "envs" / key

            async def rebuilt() -> bool:
                answer = (await client.post("/invoke/envinfo")).text
                return answer != before and new_env.is_dir()

            await eventually(rebuilt, within=60, what="envinfo running in its new environment")
            assert (await client.post("/invoke/envinfo")).text == str(new_env.stat().st_ino)
            assert (new_env / "bin").is_dir()

    async def test_a_functions_file_names_the_functions(
        self,
        processes: Processes,
        bundles: Path,
        dev_env: dict[str, str],
        stop: list[Process],
        tmp_path: Path,
    ) -> None:
        """With --config, the file's functions are served, their images being the bundles."""
        config = tmp_path / "fns.toml"
        config.write_text(
            '[[apps]]\nname = "mine"\nconfig = { GREETING = "hello" }\n\n'
            '[[functions]]\nid = "custom"\nname = "custom"\napp = "mine"\nimage = "greet"\n\n'
            '[[functions]]\nid = "typo"\nname = "typo"\napp = "mine"\nimage = "gret"\n'
        )
        dev = start_dev(processes, dev_env, 2, "--bundles", str(bundles), "--config", str(config))
        stop.append(dev)
        assert re.search(r"^\s*functions\s+custom, typo \(from ", dev.address, re.MULTILINE)
        async with httpx.AsyncClient(base_url=base_url(dev), timeout=30) as client:
            response = await client.post("/invoke/custom")
            assert (response.status_code, response.text) == (200, "hello v1")
            assert (await client.post("/invoke/greeter")).status_code == 404
            # An image naming no bundle: the guide's 502.
            typo = await client.post("/invoke/typo")
            assert (typo.status_code, typo.json()) == (
                502,
                {"message": "image 'gret': no function bundle on this runner"},
            )


class TestDevBadInput:
    def test_an_invalid_func_yaml_names_the_file_and_field(self, bundles: Path) -> None:
        """`dev --bundles` with an invalid func.yaml exits 2, naming the file, line and field."""
        (bundles / "greet" / "func.yaml").write_text("name: greeter\nmemory: lots\n")
        result = CliRunner().invoke(main, ["dev", "--bundles", str(bundles)])
        assert result.exit_code == 2
        assert (
            f"{bundles / 'greet' / 'func.yaml'}:2: memory: must be an integer from 1 to 8192, "
            "got 'lots'"
        ) in " ".join(result.output.split())

    def test_in_process_serves_only_the_examples(self, bundles: Path) -> None:
        """`--in-process` with --bundles is a usage error: in-process means the examples."""
        result = CliRunner().invoke(main, ["dev", "--in-process", "--bundles", str(bundles)])
        assert result.exit_code == 2
        assert "--in-process serves the built-in examples only" in result.output
