"""Bad calls sent straight to a runner get a clear 400, and the runner goes on serving."""

from __future__ import annotations

from pathlib import Path

import pytest

from runnerpool import Call
from runnerpool.fdk import BundleError, Bundles
from runnerpool.runner import Capacity, InProcessExecutor
from runnerpool.runner._service import RunnerService
from tests.runner.test_service import MemoryStream, call_stream, data, echo, try_msg


def service() -> RunnerService:
    return RunnerService(InProcessExecutor({"echo": echo}), capacity=Capacity(memory_mb=1024))


async def finished(runner: RunnerService, call: Call) -> tuple[int, str]:
    stream = MemoryStream([try_msg(call), data(b"", eof=True)])
    await runner.engage(stream)
    return stream.finished.errorCode, stream.finished.errorStr


class TestBadInput:
    @pytest.mark.parametrize(
        "image",
        [
            pytest.param("echo\0", id="nul"),
            pytest.param("ec\nho", id="newline"),
            pytest.param("\x1b[31mecho", id="escape"),
            pytest.param("e" * 5000, id="5000-characters"),
        ],
    )
    async def test_image_names(self, image: str) -> None:
        """An image with control characters or over 512 characters: 400 "Invalid image"."""
        runner = service()
        assert await finished(runner, Call(image=image, timeout=30)) == (400, "Invalid image")
        await self._still_serves(runner)

    @pytest.mark.parametrize("seconds", [0, -1])
    async def test_timeouts_below_one_second(self, seconds: int) -> None:
        """A timeout of 0 or less would mean none: 400, and nothing runs."""
        runner = service()
        code, text = await finished(runner, Call(image="echo", timeout=seconds))
        assert (code, text) == (400, "Invalid timeout: a call's timeout must be at least 1 second")
        await self._still_serves(runner)

    async def test_impossible_memory(self) -> None:
        """More memory than the runner has in all: Fn's 400."""
        runner = service()
        code, text = await finished(runner, Call(image="echo", timeout=30, memory=10**9))
        assert (code, text) == (400, "Requested CPU/Memory cannot be allocated")
        await self._still_serves(runner)

    async def _still_serves(self, runner: RunnerService) -> None:
        stream = call_stream(Call(image="echo"), b"still")
        await runner.engage(stream)
        assert stream.finished.success
        assert (await runner.status()).requests_handled == 2


class TestBundleNames:
    @pytest.mark.parametrize("image", ["a\0b", "x" * 5000, "../../etc"])
    def test_unusable_names_are_bundle_errors(self, tmp_path: Path, image: str) -> None:
        """Names no file can have are no bundle, said as Fn says it (no traceback)."""
        with pytest.raises(BundleError, match="no function bundle on this runner"):
            Bundles(tmp_path).resolve(image)
