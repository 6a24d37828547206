"""One behavioural suite that every placer must pass, whatever order it tries runners in."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runnerpool import (
    BasePlacer,
    BoundedLoadPlacer,
    Call,
    CHPlacer,
    FunctionFailedError,
    LeastLoadedPlacer,
    NaivePlacer,
    PlacerConfig,
    RendezvousPlacer,
    ServerBusyError,
    WarmBoundedPlacer,
    create_placer,
)
from runnerpool.testing import FakeCall, FakeRunner, FakeRunnerPool, busy, fail, refuse
from tests.helpers import counts, register_views

FAST = PlacerConfig(placer_timeout=0.1, retry_all_delay=0.005)

PLACERS: dict[str, Callable[[], BasePlacer]] = {
    "ch": lambda: CHPlacer(FAST),
    "ch-fn": lambda: CHPlacer(FAST, variant="fn"),
    "naive": lambda: NaivePlacer(FAST),
    "bounded": lambda: BoundedLoadPlacer(FAST),
    "rendezvous": lambda: RendezvousPlacer(FAST),
    "least-loaded": lambda: LeastLoadedPlacer(FAST),
    "warm-bounded": lambda: WarmBoundedPlacer(FAST),
}


@pytest.fixture(params=sorted(PLACERS))
def placer(request: pytest.FixtureRequest) -> BasePlacer:
    """Each placer in turn."""
    return PLACERS[request.param]()


class TestEveryPlacer:
    async def test_nack_then_success_elsewhere(self, placer: BasePlacer) -> None:
        """Runners that NACK are passed over; the one that accepts gets the full body."""
        runners = [FakeRunner(f"busy{i}", then=busy()) for i in range(4)] + [FakeRunner("ok")]
        call = FakeCall(Call(fn_id="f"), body=b"payload")
        await placer.place_call(FakeRunnerPool(runners), call)
        assert [a.body for a in runners[-1].attempts] == [b"payload"]

    async def test_each_pass_tries_every_runner_once(self, placer: BasePlacer) -> None:
        """Within one pass each runner is tried exactly once (the order is a permutation)."""
        runners = [FakeRunner(f"r{i}", busy()) for i in range(6)]
        await placer.place_call(FakeRunnerPool(runners), FakeCall(Call(fn_id="g")))
        first_pass = sorted((a.sequence, r.address) for r in runners for a in r.attempts)[:6]
        assert sorted(address for _, address in first_pass) == sorted(r.address for r in runners)

    async def test_committed_error_is_final(self, placer: BasePlacer) -> None:
        """A call a runner took and failed is not retried anywhere."""
        runners = [FakeRunner(f"r{i}", then=fail(FunctionFailedError())) for i in range(3)]
        with pytest.raises(FunctionFailedError):
            await placer.place_call(FakeRunnerPool(runners), FakeCall(Call(fn_id="h")))
        assert sum(len(r.attempts) for r in runners) == 1

    async def test_all_busy_gives_503(self, placer: BasePlacer) -> None:
        """When every runner refuses until the placer timeout, the result is 503."""
        views = register_views()
        runners = [FakeRunner("a", then=busy()), FakeRunner("b", then=refuse())]
        with pytest.raises(ServerBusyError):
            await placer.place_call(FakeRunnerPool(runners), FakeCall(Call(fn_id="i")))
        result = counts(views)
        assert result["placer_timeout"] == 1
        assert result["attempt"] == result["retry_busy"] + result["retry_error"]

    async def test_empty_pool_with_user_502_fails_fast(self, placer: BasePlacer) -> None:
        """No runners and a user's 502: one pass, the error, no waiting."""
        pool = FakeRunnerPool(FunctionFailedError())
        with pytest.raises(FunctionFailedError):
            await placer.place_call(pool, FakeCall())
        assert pool.calls == 1


class TestCreatePlacer:
    @pytest.mark.parametrize(
        ("name", "kind", "variant"),
        [
            ("ch", CHPlacer, "jump"),
            ("ch-fn", CHPlacer, "fn"),
            ("naive", NaivePlacer, None),
            ("bounded", BoundedLoadPlacer, None),
            ("rendezvous", RendezvousPlacer, None),
            ("least-loaded", LeastLoadedPlacer, None),
            ("warm-bounded", WarmBoundedPlacer, None),
        ],
    )
    def test_names(self, name: str, kind: type, variant: str | None) -> None:
        """Each configuration name gives its placer, with the given config."""
        placer = create_placer(name, FAST)
        assert isinstance(placer, kind)
        assert placer.config is FAST
        assert getattr(placer, "variant", None) == variant

    def test_unknown_name(self) -> None:
        """An unknown name is an error (Fn would silently fall back to round robin)."""
        with pytest.raises(ValueError, match="unknown placer 'rr'"):
            create_placer("rr")
