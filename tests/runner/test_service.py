"""The runner service's Engage handling, through an in-memory stream (no network)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest

from runnerpool import APIError, Call, FuncError
from runnerpool.rpc._codec import try_message
from runnerpool.rpc._proto import runner_pb2 as pb
from runnerpool.runner import Capacity, FunctionRequest, FunctionResponse, InProcessExecutor
from runnerpool.runner._engage import ProtocolViolation
from runnerpool.runner._service import RunnerService


class MemoryStream:
    """An Engage stream whose client side is a script of messages."""

    def __init__(self, messages: Sequence[pb.ClientMsg]) -> None:
        self._in: asyncio.Queue[pb.ClientMsg | None] = asyncio.Queue()
        for message in messages:
            self._in.put_nowait(message)
        self.sent: list[pb.RunnerMsg] = []

    def feed(self, message: pb.ClientMsg | None) -> None:
        self._in.put_nowait(message)

    async def recv(self) -> pb.ClientMsg | None:
        return await self._in.get()

    async def send(self, message: pb.RunnerMsg) -> None:
        self.sent.append(message)

    def kinds(self) -> list[str]:
        return [str(m.WhichOneof("body")) for m in self.sent]

    @property
    def finished(self) -> pb.CallFinished:
        assert self.sent[-1].WhichOneof("body") == "finished"
        return self.sent[-1].finished


def try_msg(call: Call, slot_hash_id: str = "") -> pb.ClientMsg:
    return try_message(pb.TryCall(models_call_json=call.to_json(), slot_hash_id=slot_hash_id))


def data(chunk: bytes, eof: bool = False) -> pb.ClientMsg:
    return pb.ClientMsg(data=pb.DataFrame(data=chunk, eof=eof))


def call_stream(call: Call, body: bytes = b"") -> MemoryStream:
    # As a load balancer sends it: Fn's default timeout when the test sets none.
    call.timeout = call.timeout or 30
    frames = [data(body)] if body else []
    return MemoryStream([try_msg(call), *frames, data(b"", eof=True)])


async def echo(request: FunctionRequest) -> FunctionResponse:
    return FunctionResponse(b"echo:" + request.body, headers={"Content-Type": "text/plain"})


async def slow(request: FunctionRequest) -> bytes:
    await asyncio.sleep(float(request.body or b"0.2"))
    return b"slept"


async def big(request: FunctionRequest) -> bytes:
    return b"x" * int(request.body)


async def user_error(request: FunctionRequest) -> bytes:
    raise FuncError("bad input", status_code=400)


async def crash(request: FunctionRequest) -> bytes:
    raise RuntimeError("boom")


FUNCTIONS = {"echo": echo, "slow": slow, "big": big, "user-error": user_error, "crash": crash}


def service(**kwargs: object) -> RunnerService:
    return RunnerService(InProcessExecutor(FUNCTIONS), **kwargs)  # type: ignore[arg-type]


class TestEngage:
    async def test_echo(self) -> None:
        """A sync call gets result_start with the headers, the data, then success."""
        runner = service()
        stream = call_stream(Call(id="c1", image="echo", timeout=30), b"hello")
        await runner.engage(stream)
        assert stream.kinds() == ["result_start", "data", "finished"]
        start = stream.sent[0].result_start.http
        assert start.status_code == 200
        assert [(h.key, h.value) for h in start.headers] == [("Content-Type", "text/plain")]
        assert stream.sent[1].data.data == b"echo:hello"
        assert not stream.sent[1].data.eof
        finished = stream.finished
        assert finished.success
        assert finished.details == "c1"
        assert finished.image == "echo"
        assert all((finished.createdAt, finished.startedAt, finished.completedAt))
        assert finished.executionDuration > 0

    async def test_response_frames_are_at_most_10240_bytes(self) -> None:
        """A 25 600-byte response goes out as 10 240, 10 240 and 5 120 bytes."""
        stream = call_stream(Call(image="big"), b"25600")
        await service().engage(stream)
        assert [len(m.data.data) for m in stream.sent if m.WhichOneof("body") == "data"] == [
            10240,
            10240,
            5120,
        ]

    async def test_nack_when_full(self) -> None:
        """A call that does not fit now is NACKed at once with 503, and not counted handled."""
        runner = service(capacity=Capacity(memory_mb=128))
        first = call_stream(Call(image="slow", memory=128), b"0.2")
        running = asyncio.create_task(runner.engage(first))
        await asyncio.sleep(0.05)
        second = call_stream(Call(id="c2", image="echo", memory=64))
        await runner.engage(second)
        assert second.kinds() == ["finished"]
        nack = second.finished
        assert (nack.success, nack.errorCode, nack.errorStr, nack.errorUser) == (
            False,
            503,
            "Timed out - server too busy",
            False,
        )
        assert nack.details == "c2"
        assert nack.createdAt
        assert nack.startedAt == ""
        status = await runner.status()
        assert (status.active_request_count, status.requests_received) == (1, 2)
        await running
        status = await runner.status()
        assert (status.active_request_count, status.requests_handled) == (0, 1)

    async def test_cap_on_concurrent_calls(self) -> None:
        """With max_calls=1, a second concurrent call is NACKed whatever its memory."""
        runner = service(capacity=Capacity(max_calls=1))
        running = asyncio.create_task(runner.engage(call_stream(Call(image="slow"), b"0.1")))
        await asyncio.sleep(0.02)
        second = call_stream(Call(image="echo"))
        await runner.engage(second)
        assert second.finished.errorCode == 503
        await running

    async def test_too_big_ever(self) -> None:
        """A call larger than the whole runner gets 400, not a NACK."""
        stream = call_stream(Call(image="echo", memory=4096))
        await service(capacity=Capacity(memory_mb=1024)).engage(stream)
        assert (stream.finished.errorCode, stream.finished.errorStr) == (
            400,
            "Requested CPU/Memory cannot be allocated",
        )

    async def test_detached(self) -> None:
        """A detached call gets result_start 202 at its start and finished at its end."""
        stream = call_stream(Call(image="echo", type="detached"), b"hi")
        await service().engage(stream)
        assert stream.kinds() == ["result_start", "finished"]
        assert stream.sent[0].result_start.http.status_code == 202
        assert stream.finished.success

    async def test_detached_unsupported(self) -> None:
        """A runner without detached support answers 501."""
        stream = call_stream(Call(image="echo", type="detached"))
        await service(detached=False).engage(stream)
        assert stream.finished.errorCode == 501

    @pytest.mark.parametrize(
        ("image", "code", "text", "user"),
        [
            ("user-error", 400, "bad input", True),
            ("crash", 502, "function failed", True),
            ("missing", 502, "image 'missing' is not known to this runner", True),
        ],
    )
    async def test_function_errors(self, image: str, code: int, text: str, user: bool) -> None:
        """Function errors come back in finished, with the code and the user's blame."""
        stream = call_stream(Call(image=image))
        await service().engage(stream)
        finished = stream.finished
        assert (finished.success, finished.errorCode, finished.errorStr, finished.errorUser) == (
            False,
            code,
            text,
            user,
        )

    async def test_timeout(self) -> None:
        """A function that outlives its timeout ends with 504 Timed out."""
        stream = call_stream(Call(image="slow", timeout=1), b"5")
        await service().engage(stream)
        assert (stream.finished.errorCode, stream.finished.errorStr) == (504, "Timed out")

    async def test_response_too_large(self) -> None:
        """A response over the runner's limit is Fn's 502 'function response body too large'."""
        stream = call_stream(Call(image="big"), b"2000")
        await service(max_response_size=1000).engage(stream)
        assert (stream.finished.errorCode, stream.finished.errorStr) == (
            502,
            "function response body too large",
        )

    async def test_request_too_large(self) -> None:
        """A request body over the runner's limit is refused with 413."""
        stream = call_stream(Call(image="echo"), b"x" * 2000)
        await service(max_request_size=1000).engage(stream)
        assert (stream.finished.errorCode, stream.finished.errorStr) == (
            413,
            "Request content too large",
        )


class TestProtocolViolations:
    async def test_first_message_not_try(self) -> None:
        """A stream that starts with data is a protocol failure, raised to the transport."""
        runner = service()
        with pytest.raises(ProtocolViolation, match="expected ClientMsg_Try"):
            await runner.engage(MemoryStream([data(b"", eof=True)]))
        assert (await runner.status()).active_request_count == 0

    async def test_try_in_the_body(self) -> None:
        """A second TryCall where the body should be is a protocol failure."""
        call = Call(image="echo", timeout=30)
        with pytest.raises(ProtocolViolation, match="expected ClientMsg_Data"):
            await service().engage(MemoryStream([try_msg(call), try_msg(call)]))

    async def test_bad_json(self) -> None:
        """Undecodable call JSON is answered in finished with code 0, as Fn does."""
        stream = MemoryStream([try_message(pb.TryCall(models_call_json="{nope"))])
        await service().engage(stream)
        assert (stream.finished.success, stream.finished.errorCode) == (False, 0)
        assert stream.finished.errorStr.startswith("malformed models_call_json: ")

    async def test_bad_hex_slot(self) -> None:
        """A slot_hash_id that is not hex is answered with code 0."""
        stream = MemoryStream([try_msg(Call(image="echo"), slot_hash_id="zz")])
        await service().engage(stream)
        assert (stream.finished.errorCode, stream.finished.success) == (0, False)
        assert "slot_hash_id" in stream.finished.errorStr


class TestStatus:
    async def test_counters_without_health_check(self) -> None:
        """Without a health check, status is the live counters, never cached."""
        runner = service()
        await runner.engage(call_stream(Call(image="echo")))
        status = await runner.status()
        assert (status.requests_received, status.requests_handled, status.cached) == (1, 1, False)

    async def test_health_check_is_cached_and_coalesced(self) -> None:
        """Concurrent status calls share one check; the first reader sees cached=False."""
        runs = 0

        async def check(payload: object) -> dict[str, str]:
            nonlocal runs
            runs += 1
            await asyncio.sleep(0.05)
            return {"custom": "works", "payload": json.dumps(payload)}

        runner = service(health_check=check, status_ttl=0.2)
        results = await asyncio.gather(*(runner.status() for _ in range(10)))
        assert runs == 1
        assert len({r.status_id for r in results}) == 1
        assert sorted(r.cached for r in results) == [False] + [True] * 9
        assert results[0].custom_status["custom"] == "works"
        await asyncio.sleep(0.25)
        later = await runner.status({"k": "v"})
        assert runs == 2
        assert later.status_id != results[0].status_id
        assert later.custom_status["payload"] == '{"k": "v"}'

    async def test_failing_health_check(self) -> None:
        """A health check raising an APIError reports failed with its code, not an RPC error."""

        async def check(payload: object) -> dict[str, str]:
            raise APIError("not healthy", status_code=450)

        status = await service(health_check=check).status()
        assert (status.status_failed, status.error_code, status.error_str) == (
            True,
            450,
            "not healthy",
        )

    async def test_barrier_file(self, tmp_path: object) -> None:
        """The network is reported disabled while the barrier file is missing."""
        from pathlib import Path

        barrier = Path(str(tmp_path)) / "barrier"
        runner = service(barrier_path=str(barrier))
        assert (await runner.status()).is_network_disabled
        barrier.touch()
        assert not (await runner.status()).is_network_disabled


class TestDrain:
    async def test_draining_runner_nacks_new_calls(self) -> None:
        """While draining, a new call is NACKed and a running one finishes."""
        runner = service()
        running = asyncio.create_task(runner.engage(call_stream(Call(image="slow"), b"0.1")))
        await asyncio.sleep(0.02)
        runner.start_drain()
        refused = call_stream(Call(image="echo"))
        await runner.engage(refused)
        assert refused.finished.errorCode == 503
        await runner.wait_idle()
        assert running.done()
