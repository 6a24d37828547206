"""runnerpool's load balancer in place of Fn's LB node, end to end.

A test Fn API node (in this process, on loopback) holds the recorded app, function and
trigger; ``runnerpool lb --api-url`` and runner processes serve invokes and HTTP triggers
from it, as Fn's LB node does, apart from the documented differences (404 where Fn answers
500, 503 when the API server is unreachable, stale serving).
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from runnerpool.cli import main
from tests.fdk.conftest import fdk_runner_command
from tests.fdk.test_end_to_end import short_tmpdir
from tests.lb.conftest import FAST_PLACER, JSON_ERROR, Process, Processes, closed_port
from tests.lb.fn_api import APP, FN, INVOKE_ENDPOINT, RECORDED, TRIGGER, FnApi

REPOSITORY = Path(__file__).parents[2]
CALL_ID = re.compile(r"[0-9A-Z]{26}")
ECHO = {**FN, "id": "01M8V7R8KXR00040JY20000004", "name": "echo", "image": "echo"}
FAIL = {**FN, "id": "01M8V7R8KXR00040JY20000005", "name": "fail", "image": "fail"}
ROOT_TRIGGER = {**TRIGGER, "id": "01M8V7RGCTR00040JY20000009", "name": "root", "source": "/"}
ABC_TRIGGER = {**TRIGGER, "id": "01M8V7RGCTR00040JY2000000A", "name": "abc", "source": "/a/b/c"}
FAIL_TRIGGER = {
    **TRIGGER,
    "id": "01M8V7RGCTR00040JY2000000B",
    "name": "fail",
    "source": "/fail",
    "fn_id": FAIL["id"],
}

#: The functions file of the file-source load balancer: the recorded objects, as TOML.
FILE_TOML = f"""\
[[apps]]
name = "myapp"
id = "{APP["id"]}"
config = {{ APP_CFG = "a1", SHARED = "from-app" }}

[[functions]]
id = "{FN["id"]}"
name = "httpinfo"
app = "myapp"
image = "httpinfo:0.0.1"

[[triggers]]
name = "hello-trig"
id = "{TRIGGER["id"]}"
app = "myapp"
function = "httpinfo"
source = "/hello"

[[triggers]]
name = "root"
id = "{ROOT_TRIGGER["id"]}"
app = "myapp"
function = "httpinfo"
source = "/"

[[triggers]]
name = "abc"
id = "{ABC_TRIGGER["id"]}"
app = "myapp"
function = "httpinfo"
source = "/a/b/c"
"""

#: An FDK function answering, as JSON, what the FDK shows it of a trigger's request.
FDK_HTTPINFO = """\
import io, json
from fdk import response

def handler(ctx, data: io.BytesIO = None):
    body = json.dumps({"method": ctx.Method(), "url": ctx.RequestURL(),
                       "http_headers": ctx.HTTPHeaders(), "body": data.getvalue().decode()})
    return response.Response(ctx, response_data=body, status_code=418,
                             headers={"Content-Type": "application/json", "X-Custom": "yes"})
"""


@dataclass
class Stack:
    """A test Fn API node, runners and a load balancer reading the node."""

    api: FnApi
    lb: Process


def start_runner(processes: Processes, *args: str) -> Process:
    """Start a runner serving the drop-in test functions (``tests/lb/trigger_functions``)."""
    return processes.start(
        [
            *("--log-level", "warning", "runner", "--port", "0"),
            *("--functions", "tests.lb.trigger_functions:FUNCTIONS", *args),
        ],
        "runner listening on ",
        env={"PYTHONPATH": str(REPOSITORY)},
    )


def start_lb(processes: Processes, runner: Process, *source: str) -> Process:
    """Start ``runnerpool lb`` in front of ``runner`` with the given source options."""
    placer = processes.config(json.dumps(FAST_PLACER), "p.json")
    return processes.start(
        [
            *("--log-level", "info", "lb", "--port", "0", *source),
            *("--runner-addresses", runner.address, "--placer-config", str(placer)),
        ],
        "load balancer listening on ",
    )


@pytest.fixture(scope="module")
def stack(module_processes: Processes) -> Iterator[Stack]:
    """The recorded objects and a few more on a test Fn API node; an LB and a runner on it."""
    api = FnApi()
    for fn in (ECHO, FAIL):
        api.add_fn(fn)
    for trigger in (ROOT_TRIGGER, ABC_TRIGGER, FAIL_TRIGGER):
        api.add_trigger(trigger)
    api.start()
    runner = start_runner(module_processes)
    lb = start_lb(module_processes, runner, "--api-url", api.url)
    yield Stack(api, lb)
    api.stop()


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the stack's load balancer."""
    async with httpx.AsyncClient(base_url=stack.lb.address, timeout=20) as http:
        yield http


def assert_error(response: httpx.Response, status: int, message: str) -> None:
    """Check one of Fn's error answers: status, JSON body and content type."""
    assert response.status_code == status, response.text
    assert response.json() == {"message": message}
    assert response.headers["content-type"] == JSON_ERROR


class TestInvoke:
    async def test_invoke_builds_fn_call(self, stack: Stack, client: httpx.AsyncClient) -> None:
        """An invoke of a function read from the API server gets the call Fn's LB builds."""
        response = await client.post(
            f"/invoke/{FN['id']}", content=b"hi", headers=[("X-Dup", "1"), ("X-Dup", "2")]
        )
        assert response.status_code == 200
        assert CALL_ID.fullmatch(response.headers["fn-call-id"])
        seen = response.json()
        recorded = RECORDED["trigger_call"]
        assert seen["config"] == recorded["config"]
        expected_annotations = {
            **recorded["annotations"],
            INVOKE_ENDPOINT: f"{stack.api.url}/invoke/{FN['id']}",
        }
        assert seen["annotations"] == expected_annotations
        assert seen["limits"] == [256, 20, 40]
        assert seen["ids"] == {
            "app_id": APP["id"],
            "app_name": "myapp",
            "fn_id": FN["id"],
            "trigger_id": "",
        }
        assert seen["syslog_url"] == APP["syslog_url"]
        assert seen["url"] == f"{stack.lb.address}/invoke/{FN['id']}"
        # An invoke's headers reach the function as sent: no prefix, no Fn-Intent.
        assert seen["headers"]["X-Dup"] == ["1", "2"]
        assert "Fn-Intent" not in seen["headers"]
        # The runner's headers pass through on /invoke, unlike on a trigger.
        assert response.headers["x-plain"] == "dropped"
        assert response.headers["fn-http-h-x-custom"] == "yes"

    async def test_reads_as_fn_does(self, stack: Stack, client: httpx.AsyncClient) -> None:
        """An invoke reads the function then its app, at Fn's paths."""
        api = stack.api
        before = len(api.requests)
        fn_id = "01M8V7R8KXR00040JY2000000C"
        api.add_fn({**ECHO, "id": fn_id})
        response = await client.post(f"/invoke/{fn_id}", content=b"echoed")
        assert (response.status_code, response.content) == (200, b"echoed")
        assert f"/v2/fns/{fn_id}" in api.requests[before:]

    async def test_unknown_function_404(self, client: httpx.AsyncClient) -> None:
        """An unknown function id answers 404 "Fn not found" (Fn's LB: 500)."""
        response = await client.post("/invoke/NOSUCHFN")
        assert_error(response, 404, "Fn not found")
        assert CALL_ID.fullmatch(response.headers["fn-call-id"])

    async def test_version(self, client: httpx.AsyncClient) -> None:
        """GET /version answers runnerpool's version, as Fn's {"version": ...}."""
        response = await client.get("/version")
        assert response.status_code == 200
        assert set(response.json()) == {"version"}
        assert re.fullmatch(r"\d+\.\d+\.\d+.*", response.json()["version"])


class TestTriggers:
    async def test_recorded_request(self, stack: Stack, client: httpx.AsyncClient) -> None:
        """The recorded trigger POST reaches the function as it reached Fn's runner."""
        response = await client.post(
            "/t/myapp/hello?a=1&a=2",
            content=b"posted body",
            headers=[
                ("Content-Type", "text/plain"),
                ("X-Dup", "d1"),
                ("X-Dup", "d2"),
                ("Connection", "keep-alive"),
                ("TE", "trailers"),
                ("Cookie", "c=1"),
                ("Authorization", "Bearer t"),
                ("Fn-Intent", "spoof"),
                ("Fn-Http-Status", "299"),
                ("User-Agent", "curl/7.88.1"),
                ("Accept", "*/*"),
            ],
        )
        assert response.status_code == 200, response.text
        seen = response.json()
        recorded = RECORDED["trigger_call"]
        url = f"{stack.lb.address}/t/myapp/hello?a=1&a=2"
        expected = {
            **recorded["headers"],
            "Fn-Http-Request-Url": [url],
            # httpx adds Accept-Encoding; curl does not.
            "Fn-Http-H-Accept-Encoding": ["gzip, deflate"],
        }
        assert {k: v for k, v in seen["headers"].items() if k != "Fn-Deadline"} == expected
        assert (seen["method"], seen["url"], seen["body"]) == ("POST", url, "posted body")
        assert seen["ids"]["trigger_id"] == TRIGGER["id"]
        assert seen["config"] == recorded["config"]
        assert seen["type"] == "sync"

    async def test_response_mapped(self, client: httpx.AsyncClient) -> None:
        """The answer has Fn-Http-Status's status, unprefixed headers, and nothing else of Fn's."""
        response = await client.get("/t/myapp/hello?q=1&status=418")
        assert response.status_code == 418
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-custom"] == "yes"
        assert CALL_ID.fullmatch(response.headers["fn-call-id"])
        for dropped in ("x-plain", "fn-fdk-version", "fn-http-status", "fn-http-h-x-custom"):
            assert dropped not in response.headers
        assert response.headers["content-length"] == str(len(response.content))

    @pytest.mark.parametrize(
        ("query", "status"),
        [("raw=201", 200), ("raw=201&status=202", 202), ("raw=404&status=200", 404)],
    )
    async def test_status_table(self, client: httpx.AsyncClient, query: str, status: int) -> None:
        """Runner 201 alone is 200; Fn-Http-Status below 400; the runner's from 400."""
        response = await client.get(f"/t/myapp/hello?{query}")
        assert response.status_code == status

    async def test_head(self, client: httpx.AsyncClient) -> None:
        """HEAD calls the function and answers its headers with Content-Length, no body."""
        get = await client.get("/t/myapp/hello")
        head = await client.head("/t/myapp/hello")
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["x-custom"] == "yes"
        assert int(head.headers["content-length"]) > 0
        assert abs(int(head.headers["content-length"]) - len(get.content)) < 10

    @pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "OPTIONS"])
    async def test_any_method(self, client: httpx.AsyncClient, method: str) -> None:
        """Every method reaches the function, which sees it in Fn-Http-Method."""
        response = await client.request(method, "/t/myapp/hello")
        assert response.status_code == 200
        assert response.json()["headers"]["Fn-Http-Method"] == [method]

    async def test_detached_header_does_not_detach(self, client: httpx.AsyncClient) -> None:
        """Fn-Invoke-Type: detached on a trigger is the client's header: the call is sync."""
        response = await client.post("/t/myapp/hello", headers={"Fn-Invoke-Type": "detached"})
        assert response.status_code == 200
        assert response.json()["headers"]["Fn-Http-H-Fn-Invoke-Type"] == ["detached"]

    async def test_function_failure_502(self, client: httpx.AsyncClient) -> None:
        """A function that fails through a trigger answers Fn's 502."""
        response = await client.get("/t/myapp/fail")
        assert_error(response, 502, "function failed")
        assert CALL_ID.fullmatch(response.headers["fn-call-id"])


#: Path -> the trigger that answers it, or the 404 message (Fn's LB answers 500 for those).
MATCHES = [
    ("/t/myapp", ROOT_TRIGGER["id"]),
    ("/t/myapp/", ROOT_TRIGGER["id"]),
    ("/t/myapp?x=/hello", ROOT_TRIGGER["id"]),
    ("/t/myapp/hello", TRIGGER["id"]),
    ("/t/myapp/hel%6co", TRIGGER["id"]),
    ("/t/myapp/hello?a=1", TRIGGER["id"]),
    ("/t/myapp/a/b/c?z=9", ABC_TRIGGER["id"]),
    ("/t/myapp/a/b%2Fc", ABC_TRIGGER["id"]),
    ("/t/myapp/HELLO", "Trigger not found"),
    ("/t/myapp/hello/", "Trigger not found"),
    ("/t/myapp//hello", "Trigger not found"),
    ("/t/myapp/a/b", "Trigger not found"),
    ("/t/MYAPP/hello", "App not found"),
    ("/t/nosuchapp/hello", "App not found"),
]


@pytest.fixture(scope="module")
def file_lb(module_processes: Processes) -> Process:
    """A load balancer with the same triggers from a functions file."""
    runner = start_runner(module_processes)
    config = module_processes.config(FILE_TOML, "triggers.toml")
    return start_lb(module_processes, runner, "--config", str(config))


class TestMatching:
    @pytest.mark.parametrize(("path", "expected"), MATCHES)
    @pytest.mark.parametrize("source", ["api", "file"])
    async def test_matching_table(
        self, stack: Stack, file_lb: Process, source: str, path: str, expected: str
    ) -> None:
        """A trigger matches the decoded path exactly and case-sensitively, query ignored."""
        base = stack.lb.address if source == "api" else file_lb.address
        async with httpx.AsyncClient(base_url=base, timeout=20) as client:
            response = await client.get(path)
        if expected.endswith("not found"):
            assert_error(response, 404, expected)
        else:
            assert response.status_code == 200, response.text
            assert response.json()["ids"]["trigger_id"] == expected
            # The URL the function sees is the request's, undecoded.
            assert response.json()["url"] == base + path

    @pytest.mark.parametrize("path", ["/t", "/t/"])
    async def test_no_app_is_path_not_found(self, client: httpx.AsyncClient, path: str) -> None:
        """/t and /t/ are no trigger route: 404 "Path not found"."""
        response = await client.get(path)
        assert_error(response, 404, f"Path not found: GET {path}")


class TestUnavailable:
    async def test_503_with_retry_after(self, processes: Processes) -> None:
        """Nothing at the API URL: after the retries, 503 with Retry-After, bounded in time."""
        runner = start_runner(processes)
        url = f"http://127.0.0.1:{closed_port()}"
        lb = start_lb(processes, runner, "--api-url", url, "--api-timeout", "2")
        async with httpx.AsyncClient(base_url=lb.address, timeout=30) as client:
            start = time.monotonic()
            invoke = await client.post(f"/invoke/{FN['id']}")
            assert time.monotonic() - start < 2 + 5
            trigger = await client.get("/t/myapp/hello")
        for response in (invoke, trigger):
            assert_error(response, 503, "Fn API server unavailable")
            assert response.headers["retry-after"] == "15"
        assert "Fn API server error, retrying" in lb.stderr()
        lb.signal(signal.SIGTERM)
        assert await lb.wait() == 0

    async def test_stale_while_api_down(self, processes: Processes) -> None:
        """With the API server gone, a function read before is still served, with a warning."""
        api = FnApi()
        api.start()
        try:
            runner = start_runner(processes)
            lb = start_lb(
                processes,
                runner,
                "--api-url",
                api.url,
                "--api-cache-ttl",
                "0.1",
                "--api-timeout",
                "1",
            )
            async with httpx.AsyncClient(base_url=lb.address, timeout=30) as client:
                assert (await client.get("/t/myapp/hello")).status_code == 200
                api.stop()
                await asyncio.sleep(0.3)
                response = await client.get("/t/myapp/hello")
                assert response.status_code == 200
                assert response.json()["ids"]["trigger_id"] == TRIGGER["id"]
            assert "Fn API server is unavailable" in lb.stderr()
        finally:
            api.stop()


class TestFdk:
    async def test_fdk_function_through_trigger(self, processes: Processes, tmp_path: Path) -> None:
        """A real FDK function called through a trigger sees the HTTP request; its answer maps."""
        bundles = tmp_path / "bundles"
        (bundles / "fdkinfo").mkdir(parents=True)
        (bundles / "fdkinfo" / "func.py").write_text(FDK_HTTPINFO)
        api = FnApi()
        api.add_fn({**FN, "image": "fdkinfo:0.0.1"})
        api.start()
        try:
            with short_tmpdir() as tmpdir:
                runner = processes.start(
                    fdk_runner_command(bundles, tmp_path / "state"),
                    "runner listening on ",
                    env={"TMPDIR": str(tmpdir)},
                )
                lb = start_lb(processes, runner, "--api-url", api.url)
                async with httpx.AsyncClient(base_url=lb.address, timeout=60) as client:
                    response = await client.post(
                        "/t/myapp/hello?q=1",
                        content=b"posted body",
                        headers=[("Content-Type", "text/plain"), ("X-Test", "trig")],
                    )
                runner.signal(signal.SIGTERM)
                await runner.wait(30)
        finally:
            api.stop()
        assert response.status_code == 418, response.text
        assert response.headers["x-custom"] == "yes"
        assert response.headers["content-type"] == "application/json"
        assert "fn-fdk-version" not in response.headers
        seen = response.json()
        assert seen["method"] == "POST"
        assert seen["url"] == f"{lb.address}/t/myapp/hello?q=1"
        assert seen["body"] == "posted body"
        assert seen["http_headers"]["x-test"] == "trig"
        # As recorded from Fn: the client's headers, de-prefixed, Content-Length among them.
        assert seen["http_headers"]["content-length"] == "11"
        assert "fn-intent" not in seen["http_headers"]


class TestCli:
    @pytest.mark.parametrize(
        ("args", "env"),
        [
            ([], {}),
            (["--api-url", "http://127.0.0.1:1"], {"CONFIG": "yes"}),
            ([], {"FN_RUNNER_API_URL": "http://127.0.0.1:1", "CONFIG": "yes"}),
        ],
    )
    def test_config_or_api_url(self, tmp_path: Path, args: list[str], env: dict[str, str]) -> None:
        """The lb command needs exactly one of --config and --api-url (or FN_RUNNER_API_URL)."""
        if env.pop("CONFIG", None):
            config = tmp_path / "fns.toml"
            config.write_text(FILE_TOML)
            args = [*args, "--config", str(config)]
        result = CliRunner().invoke(
            main, ["lb", "--runner-addresses", "127.0.0.1:1", *args], env=env
        )
        assert result.exit_code == 2
        assert "give either --config (a functions file) or --api-url" in result.output

    def test_bad_api_url(self) -> None:
        """An API URL that is not http(s)://host is refused before serving."""
        result = CliRunner().invoke(
            main, ["lb", "--runner-addresses", "127.0.0.1:1", "--api-url", "fn-api:8080"]
        )
        assert result.exit_code == 2
        assert "must be http://host[:port]" in result.output

    def test_help_names_the_options(self) -> None:
        """The lb command's help documents the API server options and Fn's variable."""
        result = CliRunner().invoke(main, ["lb", "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0
        for text in ("--api-url", "FN_RUNNER_API_URL", "--api-cache-ttl", "--api-max-stale"):
            assert text in result.output
