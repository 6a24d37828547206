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
from runnerpool.placers import placer_help, placer_names, register_placer
from runnerpool.placers._registry import _PLACERS
from runnerpool.testing import FakeCall, FakeRunner, FakeRunnerPool, busy, fail, refuse
from tests.helpers import counts, register_views

FAST = PlacerConfig(placer_timeout=0.1, retry_all_delay=0.005)


def unregister(name: str) -> None:
    """Remove a placer a test registered, so the registry is left as the package made it."""
    del _PLACERS[name]


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

    def test_every_builtin_name_is_registered_and_described(self) -> None:
        """The registry lists the built-in names, and the CLI's help describes each one."""
        assert set(placer_names()) >= set(PLACERS)
        assert all(f"{name} = " in placer_help() for name in PLACERS)

    def test_the_readme_documents_every_builtin_placer(self) -> None:
        """README's placer table has a row for each name the registry ships with."""
        from pathlib import Path

        readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
        for name in PLACERS:
            assert f"| `{name}`" in readme, name


class TestRegisterPlacer:
    def test_a_users_placer_is_created_by_name(self) -> None:
        """A registered name is created by create_placer, with the configuration given."""
        register_placer("test-user", NaivePlacer, description="a user's round robin")
        try:
            placer = create_placer("test-user", FAST)
            assert isinstance(placer, NaivePlacer)
            assert placer.config is FAST
            assert "test-user" in placer_names()
            assert "test-user = a user's round robin" in placer_help()
        finally:
            unregister("test-user")

    def test_a_taken_name_is_refused_unless_replacing(self) -> None:
        """Registering a built-in name again is an error unless replace is asked for."""
        with pytest.raises(ValueError, match="already registered"):
            register_placer("ch", NaivePlacer, description="x")

    @pytest.mark.parametrize("name", ["", "Upper", "with space", "a_b"])
    def test_a_malformed_name_is_refused(self, name: str) -> None:
        """Names are what a user types after --placer: lower-case letters, digits and '-'."""
        with pytest.raises(ValueError, match="must be lower-case"):
            register_placer(name, NaivePlacer, description="x")

    def test_a_registered_name_is_a_cli_choice(self) -> None:
        """The CLI reads the registry when it parses, so a placer registered later is a choice."""
        from click.testing import CliRunner

        from runnerpool.cli import main

        register_placer("test-cli", NaivePlacer, description="registered after import")
        try:
            result = CliRunner().invoke(main, ["lb", "--help"])
            assert "test-cli = registered after import" in result.output
            bad = CliRunner().invoke(
                main, ["simulate", "--placers", "test-nope", "--duration", "1"]
            )
            assert bad.exit_code == 2
            assert "test-cli" in bad.output
        finally:
            unregister("test-cli")
