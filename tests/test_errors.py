"""The exception tree: codes, messages and what may be retried."""

from __future__ import annotations

import pytest

from runnerpool import (
    APIError,
    CallTimeoutError,
    FuncError,
    FunctionFailedError,
    NotPlacedError,
    RunnerBusyError,
    RunnerClosedError,
    RunnerPoolError,
    ServerBusyError,
)


class TestErrors:
    @pytest.mark.parametrize(
        ("error", "code", "message"),
        [
            (ServerBusyError(), 503, "Timed out - server too busy"),
            (FunctionFailedError(), 502, "function failed"),
            (CallTimeoutError(), 504, "Timed out"),
            (APIError("boom", status_code=418), 418, "boom"),
            (FuncError("bad input", status_code=400), 400, "bad input"),
        ],
    )
    def test_codes_and_messages(self, error: APIError, code: int, message: str) -> None:
        """Each API error carries Fn's status code and message."""
        assert error.status_code == code
        assert str(error) == error.message == message

    def test_user_errors_are_func_errors(self) -> None:
        """FunctionFailedError and CallTimeoutError mark the user's fault; 503 does not."""
        assert isinstance(FunctionFailedError(), FuncError)
        assert isinstance(CallTimeoutError(), FuncError)
        assert not isinstance(ServerBusyError(), FuncError)

    def test_refusals_are_not_placed(self) -> None:
        """The NACK and a closed runner are NotPlacedError: safe to retry elsewhere."""
        assert isinstance(RunnerBusyError(), NotPlacedError)
        assert isinstance(RunnerClosedError(), NotPlacedError)
        assert str(RunnerClosedError()) == "Runner is closed"
        assert not isinstance(RunnerBusyError(), APIError)

    def test_one_root(self) -> None:
        """Every runnerpool error derives from RunnerPoolError."""
        for error in (ServerBusyError(), RunnerBusyError(), FuncError()):
            assert isinstance(error, RunnerPoolError)

    def test_repr(self) -> None:
        """The repr shows the class, message and code."""
        assert repr(APIError("x", status_code=500)) == "APIError('x', status_code=500)"
