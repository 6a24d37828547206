"""Fn's invoke API end to end: a load balancer process in front of runner processes.

Each answer is checked against Fn's exact HTTP behaviour (spec §7): status, body, headers.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from runnerpool import BufferedCall, PlacerConfig, StaticRunnerPool, create_placer
from runnerpool._ids import new_id
from runnerpool.lb._agent import DetachedResponse, LBAgent
from runnerpool.lb._calls import build_model
from runnerpool.lb._registry import App, Function
from tests.lb.conftest import (
    BUSY_BODY,
    FAST_PLACER,
    JSON_ERROR,
    MB,
    PLACER_TIMEOUT,
    Process,
    Processes,
    closed_port,
    eventually,
    get_metrics,
    runner_status,
    sigkill,
    statuses,
    totals,
    wait_active,
)

CALL_ID = re.compile(r"[0-9A-Z]{26}")
#: The load balancer's limits in the shared cluster.
MAX_REQUEST = 10_000
MAX_RESPONSE = 1_000


@dataclass
class Cluster:
    """A load balancer process and the runner processes behind it."""

    runners: list[Process]
    lb: Process

    @property
    def addresses(self) -> list[str]:
        """The runners' addresses."""
        return [runner.address for runner in self.runners]


@pytest.fixture(scope="module")
def cluster(module_processes: Processes) -> Cluster:
    """Two plain runners behind a load balancer with request and response limits."""
    runners = [module_processes.runner() for _ in range(2)]
    lb = module_processes.lb(
        [r.address for r in runners],
        "--max-request-size",
        str(MAX_REQUEST),
        "--max-response-size",
        str(MAX_RESPONSE),
    )
    return Cluster(runners, lb)


@pytest.fixture(scope="module")
def full_cluster(module_processes: Processes) -> Cluster:
    """Two runners of one call and 256 MB each behind a load balancer."""
    runners = [
        module_processes.runner("--max-calls", "1", "--max-memory", str(256 * MB)) for _ in range(2)
    ]
    return Cluster(runners, module_processes.lb([r.address for r in runners]))


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the shared cluster's load balancer."""
    async with httpx.AsyncClient(base_url=cluster.lb.address, timeout=10) as http:
        yield http


def assert_error(response: httpx.Response, status: int, body: bytes, call_id: bool) -> None:
    """Check one of Fn's error answers: status, exact JSON body, content type, call id."""
    assert response.status_code == status
    assert response.content == body
    assert response.headers["content-type"] == JSON_ERROR
    assert response.headers["content-length"] == str(len(body))
    if call_id:
        assert CALL_ID.fullmatch(response.headers["fn-call-id"])
    else:
        assert "fn-call-id" not in response.headers


async def raw_request(url: str, request: bytes, read_status: bool) -> bytes:
    """Send a raw HTTP request, read at most its status line, and hang up at once."""
    host, _, port = url.removeprefix("http://").rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request)
        await writer.drain()
        return await reader.readline() if read_status else b""
    finally:
        writer.close()
        await writer.wait_closed()


class TestSync:
    async def test_echo_answers_body_content_type_and_call_id(
        self, client: httpx.AsyncClient
    ) -> None:
        """A sync call answers 200 with the function's body, its Content-Type and a call id."""
        response = await client.post(
            "/invoke/echo", content=b"hello, fn", headers={"Content-Type": "text/x-test"}
        )
        assert response.status_code == 200
        assert response.content == b"hello, fn"
        assert response.headers["content-type"] == "text/x-test"
        assert response.headers["content-length"] == "9"
        assert CALL_ID.fullmatch(response.headers["fn-call-id"])

    async def test_hello_answers_json_with_exact_length(self, client: httpx.AsyncClient) -> None:
        """A JSON function's answer arrives whole, with a correct Content-Length."""
        response = await client.post("/invoke/hello", json={"name": "Ada"})
        assert response.status_code == 200
        assert response.content == b'{"message": "Hello, Ada!"}'
        assert response.headers["content-type"] == "application/json"
        assert int(response.headers["content-length"]) == len(response.content)

    async def test_every_call_gets_its_own_id(self, client: httpx.AsyncClient) -> None:
        """Two calls get two distinct 26-character call ids."""
        first = await client.post("/invoke/echo", content=b"1")
        second = await client.post("/invoke/echo", content=b"2")
        assert first.headers["fn-call-id"] != second.headers["fn-call-id"]


class TestDetached:
    async def test_202_at_once_then_the_call_completes(
        self, cluster: Cluster, client: httpx.AsyncClient
    ) -> None:
        """A detached call answers 202 at once; the function then runs to its end."""
        before = await totals(cluster.addresses)
        start = time.monotonic()
        response = await client.post(
            "/invoke/slow", content=b"1", headers={"Fn-Invoke-Type": "detached"}
        )
        assert time.monotonic() - start < 0.5
        assert response.status_code == 202
        assert response.content == b""
        assert response.headers["content-length"] == "0"
        assert CALL_ID.fullmatch(response.headers["fn-call-id"])
        received, handled, active = await totals(cluster.addresses)
        assert (received, handled, active) == (before[0] + 1, before[1], 1)

        async def handled_one() -> bool:
            return (await totals(cluster.addresses))[1] == before[1] + 1

        await eventually(handled_one, what="the detached call handled")
        assert time.monotonic() - start >= 0.9

    @pytest.mark.parametrize("read_status", [True, False], ids=["after-202", "before-202"])
    async def test_client_hanging_up_does_not_lose_the_call(
        self, cluster: Cluster, read_status: bool
    ) -> None:
        """A detached call runs to its end though its client hung up (after or before the 202)."""
        before = await totals(cluster.addresses)
        status_line = await raw_request(
            cluster.lb.address,
            b"POST /invoke/slow HTTP/1.1\r\nHost: lb\r\nFn-Invoke-Type: detached\r\n"
            b"Content-Length: 3\r\n\r\n0.3",
            read_status,
        )
        if read_status:
            assert status_line.startswith(b"HTTP/1.1 202 ")

        async def handled_one() -> bool:
            received, handled, active = await totals(cluster.addresses)
            return (received, handled, active) == (before[0] + 1, before[1] + 1, 0)

        await eventually(handled_one, what="the detached call handled")

    @pytest.mark.parametrize(
        ("headers", "status"),
        [
            ({"FN-INVOKE-TYPE": "detached"}, 202),
            ({"fn-invoke-type": "detached"}, 202),
            ({"Fn-Invoke-Type": "Detached"}, 200),
            ({"Fn-Intent": "detached"}, 200),
        ],
    )
    async def test_header_name_is_case_insensitive_value_is_exact(
        self, client: httpx.AsyncClient, headers: dict[str, str], status: int
    ) -> None:
        """Only `Fn-Invoke-Type: detached` (any name case, exact value) makes a call detached."""
        response = await client.post("/invoke/echo", content=b"x", headers=headers)
        assert response.status_code == status

    async def test_failure_after_the_202_is_only_logged(
        self, cluster: Cluster, client: httpx.AsyncClient
    ) -> None:
        """A detached call failing after its 202 is counted and logged, with no stray error."""
        response = await client.post(
            "/invoke/fail", content=b"x", headers={"Fn-Invoke-Type": "detached"}
        )
        # As in Fn, the runner acknowledges at the start: the client gets 202 even so.
        assert response.status_code == 202
        warning = f"Detached call {response.headers['fn-call-id']} failed after its acknowledgement"

        async def logged() -> bool:
            return warning in cluster.lb.stderr()

        await eventually(logged, what="the failure logged")

    async def test_failure_after_the_202_leaves_no_unretrieved_task(
        self, cluster: Cluster, caplog: pytest.LogCaptureFixture
    ) -> None:
        """In process: a detached call failing after its 202 leaves no unretrieved exception."""
        # A captured log record would keep the error, and so the task, alive.
        caplog.set_level(logging.ERROR, logger="runnerpool.lb._agent")
        loop = asyncio.get_running_loop()
        reported: list[str] = []
        loop.set_exception_handler(lambda _, context: reported.append(context["message"]))
        try:
            agent = LBAgent(
                create_placer("naive", PlacerConfig(placer_timeout=0.5)),
                StaticRunnerPool(cluster.addresses[:1]),
            )
            function = Function(id="fail", name="fail", app=App(id="t", name="t"), image="fail")
            model = build_model(
                function,
                call_id=new_id(),
                url="http://lb/invoke/fail",
                method="POST",
                headers=[],
                detached=True,
            )
            call = BufferedCall(model, response_writer=DetachedResponse())

            async def body() -> bytes:
                return b"x"

            await agent.submit_detached(call, body)
            assert call.response_writer.status_code == 202
            await agent.aclose()  # waits for the detached call to end
            gc.collect()
        finally:
            loop.set_exception_handler(None)
        assert reported == []


class TestErrors:
    async def test_unknown_function(self, client: httpx.AsyncClient) -> None:
        """An unknown function id answers 404 "Fn not found" (Fn's API message), with a call id."""
        response = await client.post("/invoke/no-such-fn", content=b"x")
        assert_error(response, 404, b'{"message":"Fn not found"}\n', call_id=True)

    @pytest.mark.parametrize("method", ["PUT", "GET", "DELETE"])
    async def test_wrong_method(self, client: httpx.AsyncClient, method: str) -> None:
        """Another method than POST on /invoke/ID answers 405 naming the method and path."""
        response = await client.request(method, "/invoke/x")
        body = f'{{"message":"Method not allowed: {method} /invoke/x"}}\n'.encode()
        assert_error(response, 405, body, call_id=False)

    @pytest.mark.parametrize(("method", "path"), [("GET", "/x"), ("POST", "/invoke")])
    async def test_unknown_path(self, client: httpx.AsyncClient, method: str, path: str) -> None:
        """An unknown path answers 404 "Path not found" with the method and path."""
        response = await client.request(method, path)
        body = f'{{"message":"Path not found: {method} {path}"}}\n'.encode()
        assert_error(response, 404, body, call_id=False)

    async def test_function_failure_is_502_and_not_retried(
        self, cluster: Cluster, client: httpx.AsyncClient
    ) -> None:
        """A failing function answers 502 "function failed"; no other runner is tried."""
        before = await totals(cluster.addresses)
        response = await client.post("/invoke/fail", content=b"x")
        assert_error(response, 502, b'{"message":"function failed"}\n', call_id=True)
        received, handled, _ = await totals(cluster.addresses)
        assert (received, handled) == (before[0] + 1, before[1] + 1)

    async def test_function_error_status_and_message(self, client: httpx.AsyncClient) -> None:
        """A function's own error answers its status and message as Fn's JSON error."""
        response = await client.post("/invoke/hello", content=b"not json")
        body = b'{"message":"body must be JSON such as {\\"name\\": \\"Ada\\"}"}\n'
        assert_error(response, 400, body, call_id=True)

    async def test_request_too_large_by_content_length(
        self, cluster: Cluster, client: httpx.AsyncClient
    ) -> None:
        """A Content-Length over --max-request-size answers 413 before any runner is tried."""
        before = await totals(cluster.addresses)
        response = await client.post("/invoke/echo", content=b"x" * (MAX_REQUEST + 1))
        assert_error(response, 413, b'{"message":"Request content too large"}\n', call_id=True)
        assert (await totals(cluster.addresses))[0] == before[0]

    async def test_request_too_large_chunked(
        self, cluster: Cluster, client: httpx.AsyncClient
    ) -> None:
        """A chunked body growing past --max-request-size answers 413; no runner is tried."""

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(11):
                yield b"x" * 1000

        before = await totals(cluster.addresses)
        response = await client.post("/invoke/echo", content=chunks())
        assert_error(response, 413, b'{"message":"Request content too large"}\n', call_id=True)
        assert (await totals(cluster.addresses))[0] == before[0]

    async def test_request_at_the_limit_is_accepted(self, client: httpx.AsyncClient) -> None:
        """A body of exactly --max-request-size is placed and run."""
        body = b" " * (MAX_REQUEST - 1) + b"0"  # slow sleeps float(body) = 0 seconds
        response = await client.post("/invoke/slow", content=body)
        assert (response.status_code, response.content) == (200, b"slept 0s")

    async def test_response_too_large(self, client: httpx.AsyncClient) -> None:
        """A function answer over --max-response-size gives exactly Fn's 502."""
        response = await client.post("/invoke/echo", content=b"y" * (MAX_RESPONSE + 1))
        body = b'{"message":"function response body too large"}\n'
        assert_error(response, 502, body, call_id=True)
        fits = await client.post("/invoke/echo", content=b"y" * MAX_RESPONSE)
        assert fits.status_code == 200

    async def test_client_gone_mid_call_is_canceled(
        self, cluster: Cluster, client: httpx.AsyncClient
    ) -> None:
        """A client leaving mid-call is counted canceled, and the runner stops the call."""
        before = await get_metrics(client)
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/invoke/slow", content=b"3", timeout=0.3)
        left = time.monotonic()

        async def canceled() -> bool:
            return (await get_metrics(client))("fn_canceled_total") == before(
                "fn_canceled_total"
            ) + 1

        await eventually(canceled, what="the call counted canceled")
        await wait_active(cluster.addresses, 0)
        assert time.monotonic() - left < 2  # the function would have slept 3 s
        after = await get_metrics(client)
        for name, labels in [
            ("fn_lb_call_latency_count", {"call_status": "canceled"}),
            ("fn_lb_placer_placed_abort_count_total", {}),
            ("fn_lb_placer_client_cancelled_count_total", {}),
        ]:
            assert after(name, **labels) == before(name, **labels) + 1, name
        for name in ("fn_errors_total", "fn_completed_total"):
            assert after(name) == before(name), name
        assert after("fn_running") == after("fn_queued") == 0

    async def test_client_gone_during_upload_is_canceled(
        self, cluster: Cluster, client: httpx.AsyncClient
    ) -> None:
        """A client leaving before its body is read is counted canceled, not as an error."""
        before = await get_metrics(client)
        await raw_request(
            cluster.lb.address,
            b"POST /invoke/echo HTTP/1.1\r\nHost: lb\r\nContent-Length: 5000\r\n\r\n" + b"x" * 100,
            read_status=False,
        )

        async def ended() -> bool:
            metrics = await get_metrics(client)
            return metrics("fn_calls_total") == before("fn_calls_total") + 1 and not metrics(
                "fn_queued"
            )

        await eventually(ended, what="the call ended")
        after = await get_metrics(client)
        assert after("fn_errors_total") == before("fn_errors_total")
        assert after("fn_canceled_total") == before("fn_canceled_total") + 1


class TestCapacity:
    async def test_full_runner_refuses_and_the_other_runs_the_call(
        self, full_cluster: Cluster
    ) -> None:
        """A runner that is full refuses (NACK); the call runs on the other runner (200)."""
        before = await statuses(full_cluster.addresses)
        async with httpx.AsyncClient(base_url=full_cluster.lb.address, timeout=10) as client:
            start = time.monotonic()
            first = asyncio.create_task(client.post("/invoke/slow", content=b"0.5"))
            await wait_active(full_cluster.addresses, 1)
            second = await client.post("/invoke/slow", content=b"0.5")
            assert (await first).status_code == second.status_code == 200
            assert second.content == b"slept 0.5s"
            assert time.monotonic() - start < 0.95  # the two calls ran side by side
        after = await statuses(full_cluster.addresses)
        # Each runner ran one call; the second call's home refused it first (a NACK is
        # received but not handled).
        handled = [
            a.requests_handled - b.requests_handled for a, b in zip(after, before, strict=True)
        ]
        received = sum(
            a.requests_received - b.requests_received for a, b in zip(after, before, strict=True)
        )
        assert (handled, received) == ([1, 1], 3)

    async def test_all_runners_saturated_is_503_after_the_placer_timeout(
        self, full_cluster: Cluster
    ) -> None:
        """Every runner full until the placer timeout: 503 with Retry-After: 15."""
        async with httpx.AsyncClient(base_url=full_cluster.lb.address, timeout=10) as client:
            occupying = []
            for active in (1, 2):
                occupying.append(asyncio.create_task(client.post("/invoke/slow", content=b"1.2")))
                await wait_active(full_cluster.addresses, active)
            start = time.monotonic()
            response = await client.post("/invoke/echo", content=b"x")
            elapsed = time.monotonic() - start
            assert_error(response, 503, BUSY_BODY, call_id=True)
            assert response.headers["retry-after"] == "15"
            assert PLACER_TIMEOUT <= elapsed < PLACER_TIMEOUT + 0.5
            assert [(await task).status_code for task in occupying] == [200, 200]

    async def test_detached_call_on_saturated_runners_is_503(self, full_cluster: Cluster) -> None:
        """A detached call no runner takes answers 503 after the detached placer timeout."""
        async with httpx.AsyncClient(base_url=full_cluster.lb.address, timeout=10) as client:
            occupying = []
            for active in (1, 2):
                occupying.append(asyncio.create_task(client.post("/invoke/slow", content=b"1.2")))
                await wait_active(full_cluster.addresses, active)
            start = time.monotonic()
            response = await client.post(
                "/invoke/echo", content=b"x", headers={"Fn-Invoke-Type": "detached"}
            )
            elapsed = time.monotonic() - start
            assert_error(response, 503, BUSY_BODY, call_id=True)
            assert response.headers["retry-after"] == "15"
            assert PLACER_TIMEOUT <= elapsed < PLACER_TIMEOUT + 0.5
            assert [(await task).status_code for task in occupying] == [200, 200]

    async def test_call_that_never_fits_is_400_and_not_retried(self, full_cluster: Cluster) -> None:
        """A function bigger than a runner's memory answers 400; no other runner is tried."""
        before = await totals(full_cluster.addresses)
        async with httpx.AsyncClient(base_url=full_cluster.lb.address, timeout=10) as client:
            response = await client.post("/invoke/big", content=b"x")
        body = b'{"message":"Requested CPU/Memory cannot be allocated"}\n'
        assert_error(response, 400, body, call_id=True)
        assert (await totals(full_cluster.addresses))[0] == before[0] + 1


@pytest.fixture
def fresh_cluster(processes: Processes) -> Cluster:
    """Two plain runners behind a load balancer, for one test."""
    runners = [processes.runner() for _ in range(2)]
    return Cluster(runners, processes.lb([r.address for r in runners]))


class TestRunnerFailures:
    async def test_runner_killed_mid_call_is_500_and_not_retried(
        self, fresh_cluster: Cluster
    ) -> None:
        """A runner killed mid-call gives 500 "internal server error"; nothing is retried."""
        async with httpx.AsyncClient(base_url=fresh_cluster.lb.address, timeout=10) as client:
            call = asyncio.create_task(client.post("/invoke/slow", content=b"5"))
            await wait_active(fresh_cluster.addresses, 1)
            found = await statuses(fresh_cluster.addresses)
            victim = next(
                r
                for r, s in zip(fresh_cluster.runners, found, strict=True)
                if s.active_request_count
            )
            other = next(r for r in fresh_cluster.runners if r is not victim)
            start = time.monotonic()
            sigkill(victim)
            response = await call
            assert time.monotonic() - start < 2
        assert_error(response, 500, b'{"message":"internal server error"}\n', call_id=True)
        assert (await runner_status(other.address)).requests_received == 0
        assert "RunnerConnectionError" in fresh_cluster.lb.stderr()

    async def test_no_runner_reachable_is_503_at_once(self, processes: Processes) -> None:
        """Runners that all refuse connections: 503 with Retry-After at once, not at the timeout."""
        slow_placer = {**FAST_PLACER, "placer_timeout": "60s"}
        lb = processes.lb(
            [f"127.0.0.1:{closed_port()}", f"127.0.0.1:{closed_port()}"], placer_config=slow_placer
        )
        async with httpx.AsyncClient(base_url=lb.address, timeout=30) as client:
            start = time.monotonic()
            response = await client.post("/invoke/echo", content=b"x")
            elapsed = time.monotonic() - start
            metrics = await get_metrics(client)
        assert_error(response, 503, b'{"message":"No runner is reachable"}\n', call_id=True)
        assert response.headers["retry-after"] == "15"
        assert elapsed < 10  # the placer timeout is 60 s
        assert metrics("fn_server_busy_total") == 1
        assert metrics("fn_lb_placer_timeout_count_total") == 0
        assert metrics("fn_lb_placer_retry_error_count_total") >= 2
