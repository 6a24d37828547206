"""The consistent-hash placer: Fn's vectors, its probing order, both variants."""

from __future__ import annotations

from typing import Any

import pytest

from runnerpool import Call, CHPlacer, PlacerConfig, ServerBusyError
from runnerpool.placers._hashing import fn_jump_hash, fn_key_hash, jump_hash
from runnerpool.sim import VirtualEventLoop, run_virtual, virtual_runtime
from runnerpool.testing import FakeCall, FakeRunner, FakeRunnerPool, busy
from tests.helpers import counts, register_views


def tried_order(runners: list[FakeRunner]) -> list[str]:
    """Return runner addresses in the order their attempts happened."""
    attempts = sorted((a.sequence, r.address) for r in runners for a in r.attempts)
    return [address for _, address in attempts]


class TestVectors:
    def test_siphash_reference_vector(self, ch_vectors: dict[str, Any]) -> None:
        """The siphashc hash gives the SipHash-2-4 reference vector (key 00..0f, message 00..0e)."""
        import siphashc

        ref = ch_vectors["siphash_reference_vector"]
        digest = siphashc.siphash(bytes.fromhex(ref["key_hex"]), bytes.fromhex(ref["message_hex"]))
        assert digest == int(ref["siphash24"], 16)

    def test_every_vector(self, ch_vectors: dict[str, Any]) -> None:
        """Both variants give the start index of every vector, for every runner count."""
        assert ch_vectors["vectors"], "the vector file has vectors"
        for vector in ch_vectors["vectors"]:
            key = fn_key_hash(vector["fn_id"])
            assert key == vector["siphash"], vector["fn_id"]
            for n, fn_start, canonical in zip(
                ch_vectors["counts"], vector["fn_start"], vector["canonical_start"], strict=True
            ):
                assert fn_jump_hash(key, n) == fn_start, (vector["fn_id"], n)
                assert jump_hash(key, n) == canonical, (vector["fn_id"], n)

    async def test_placers_start_where_the_vectors_say(self, ch_vectors: dict[str, Any]) -> None:
        """The placer's first attempt is on the vector's start index, for both variants."""
        for variant, column in (("fn", "fn_start"), ("jump", "canonical_start")):
            placer = CHPlacer(variant=variant)  # type: ignore[arg-type]
            for vector in ch_vectors["vectors"]:
                for n, start in zip(ch_vectors["counts"][:12], vector[column][:12], strict=True):
                    runners = [FakeRunner(f"r{i}") for i in range(n)]
                    await placer.place_call(
                        FakeRunnerPool(runners), FakeCall(Call(fn_id=vector["fn_id"]))
                    )
                    assert [len(r.attempts) for r in runners].index(1) == start

    def test_no_runners_gives_minus_one(self) -> None:
        """With no runners, both variants answer -1 (Fn's jumpConsistentHash(key, 0))."""
        assert fn_jump_hash(fn_key_hash("fn1"), 0) == -1
        assert jump_hash(fn_key_hash("fn1"), 0) == -1

    def test_fn_variant_never_divides_by_zero(self) -> None:
        """A key whose LCG step leaves key>>33 == 0 stops at the current bucket (Go panics)."""
        # key * LCG + 1 == 0 (mod 2**64) makes the first step's high bits zero.
        lcg_inverse = pow(2862933555777941757, -1, 1 << 64)
        key = (-1 * lcg_inverse) % (1 << 64)
        assert ((key * 2862933555777941757 + 1) % (1 << 64)) >> 33 == 0
        assert fn_jump_hash(key, 1) == 0
        assert fn_jump_hash(key, 1000) == 0

    def test_unknown_variant(self) -> None:
        """An unknown variant is refused with a clear error."""
        with pytest.raises(ValueError, match="unknown consistent-hash variant"):
            CHPlacer(variant="ring")  # type: ignore[arg-type]


class TestProbingOrder:
    @pytest.mark.parametrize(
        ("fn_id", "expected"),
        [
            ("fn1", ["r0", "r1", "r2", "r3", "r4", "r0", "r1"]),
            ("hello-world", ["r4", "r0", "r1", "r2", "r3", "r4", "r0"]),
        ],
    )
    def test_fn_probing_order(self, fn_id: str, expected: list[str]) -> None:
        """Spec 10.2: five busy runners are probed linearly from Fn's start, pass after pass.

        On virtual time, so the 50 ms placer timeout holds its five passes whatever the load.
        """
        runners = [FakeRunner(f"r{i}", then=busy()) for i in range(5)]
        loop = VirtualEventLoop()
        placer = CHPlacer(
            PlacerConfig(placer_timeout=0.05), variant="fn", runtime=virtual_runtime(loop)
        )

        async def place() -> None:
            with pytest.raises(ServerBusyError):
                await placer.place_call(FakeRunnerPool(runners), FakeCall(Call(fn_id=fn_id)))

        run_virtual(place(), loop)
        order = tried_order(runners)
        assert order[: len(expected)] == expected
        assert len(order) >= 25  # five passes of 10 ms back-off in 50 ms

    async def test_busy_then_ok(self) -> None:
        """Spec 10.2: runners [busy, ok] with fn1 try busy then ok, and the metrics say so."""
        views = register_views()
        runners = [FakeRunner("busy", then=busy()), FakeRunner("ok")]
        await CHPlacer(variant="fn").place_call(
            FakeRunnerPool(runners), FakeCall(Call(fn_id="fn1"))
        )
        assert tried_order(runners) == ["busy", "ok"]
        assert counts(views) == {"attempt": 2, "retry_busy": 1, "placed_ok": 1}

    async def test_same_function_same_runner(self) -> None:
        """Every call of a function starts on the same runner, whatever the call."""
        runners = [FakeRunner(f"r{i}") for i in range(7)]
        placer = CHPlacer()
        for _ in range(20):
            await placer.place_call(FakeRunnerPool(runners), FakeCall(Call(fn_id="hello-world")))
        assert sorted(len(r.attempts) for r in runners) == [0, 0, 0, 0, 0, 0, 20]
        assert len(runners[jump_hash(fn_key_hash("hello-world"), 7)].attempts) == 20
