"""Smaller parts of the runner: capacity, the example functions, health check failures."""

from __future__ import annotations

import io
from collections.abc import Mapping

import pytest

from runnerpool import Call, FuncError
from runnerpool.examples import hello
from runnerpool.runner import Capacity, FunctionRequest
from runnerpool.runner._health import HealthTracker


class TestCapacity:
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [({"memory_mb": -1}, "memory_mb"), ({"max_calls": 0}, "max_calls")],
    )
    def test_bad_limits(self, kwargs: dict[str, int], message: str) -> None:
        """Negative memory or a cap below one call is refused, naming the limit."""
        with pytest.raises(ValueError, match=message):
            Capacity(**kwargs)

    def test_reserve_and_release(self) -> None:
        """Reservations add up to the limit, refuse beyond it, and come back on release."""
        capacity = Capacity(memory_mb=256, max_calls=3)
        first = capacity.try_reserve(128)
        second = capacity.try_reserve(128)
        assert first is not None
        assert second is not None
        assert capacity.try_reserve(1) is None
        assert (capacity.used_mb, capacity.calls) == (256, 2)
        capacity.release(first)
        assert capacity.try_reserve(100) is not None
        assert capacity.can_ever_fit(256)
        assert not capacity.can_ever_fit(257)


def request(body: bytes) -> FunctionRequest:
    return FunctionRequest(body=body, headers={}, config={}, call=Call(), log=io.BytesIO())


class TestExamples:
    async def test_hello(self) -> None:
        """The hello example greets the name of a JSON body, or the world."""
        assert (await hello(request(b'{"name": "Ada"}'))).body == b'{"message": "Hello, Ada!"}'
        assert (await hello(request(b""))).body == b'{"message": "Hello, world!"}'

    @pytest.mark.parametrize("body", [b"not json", b"[1, 2]"])
    async def test_hello_bad_body(self, body: bytes) -> None:
        """The hello example answers a body that is not a JSON object with a user error 400."""
        with pytest.raises(FuncError) as info:
            await hello(request(body))
        assert info.value.status_code == 400


class TestHealthTracker:
    async def test_unexpected_exception(self) -> None:
        """A health check raising a plain exception reports failed with code 0."""

        async def check(payload: Mapping[str, object]) -> Mapping[str, str]:
            raise RuntimeError("disk on fire")

        status = await HealthTracker(check).get({})
        assert (status.status_failed, status.error_code, status.error_str) == (
            True,
            0,
            "disk on fire",
        )


class TestInProcessExecutor:
    async def test_register(self) -> None:
        """A function registered after creation runs for its image."""
        from runnerpool.runner import FunctionResponse, InProcessExecutor
        from tests.runner.test_service import call_stream

        async def shout(request: FunctionRequest) -> FunctionResponse:
            return FunctionResponse(request.body.upper())

        executor = InProcessExecutor({})
        executor.register("shout", shout)
        from runnerpool.runner import RunnerService

        stream = call_stream(Call(image="shout"), b"hey")
        await RunnerService(executor).engage(stream)
        assert stream.sent[1].data.data == b"HEY"
