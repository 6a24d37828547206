"""Properties of the jump hashes (Hypothesis) and of Fn's skew."""

from __future__ import annotations

import math
import random
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from runnerpool.placers._hashing import fn_jump_hash, fn_key_hash, jump_hash

keys = st.integers(min_value=0, max_value=(1 << 64) - 1)
counts = st.integers(min_value=1, max_value=1 << 16)


class TestJumpHashProperties:
    @given(keys, counts)
    def test_in_range(self, key: int, n: int) -> None:
        """Both variants always answer a bucket in range, for any 64-bit key."""
        assert 0 <= jump_hash(key, n) < n
        assert 0 <= fn_jump_hash(key, n) < n

    @given(keys, st.integers(min_value=1, max_value=4096))
    def test_growing_moves_keys_only_to_the_new_bucket(self, key: int, n: int) -> None:
        """Going from n to n+1 buckets, a key stays put or moves to bucket n."""
        before, after = jump_hash(key, n), jump_hash(key, n + 1)
        assert after in (before, n)

    @given(st.text())
    def test_fn_key_hash_is_64_bit(self, fn_id: str) -> None:
        """The function-id hash is an unsigned 64-bit integer for any text."""
        assert 0 <= fn_key_hash(fn_id) < 1 << 64

    def test_moved_share_is_about_one_over_n_plus_one(self) -> None:
        """Over 10^5 keys, growing from n to n+1 moves about 1/(n+1) of them."""
        rng = random.Random(7)
        sample = [rng.getrandbits(64) for _ in range(100_000)]
        for n in (1, 2, 9, 63):
            moved = sum(jump_hash(k, n) != jump_hash(k, n + 1) for k in sample) / len(sample)
            assert abs(moved - 1 / (n + 1)) < 0.01, (n, moved)

    def test_home_shares_are_even(self) -> None:
        """For n <= 64 over 10^5 function ids, every runner's home share is 1/n within 3 points.

        A tighter check rides along: each bucket count is within 5 binomial standard
        deviations of 10^5/n, which is what a uniform hash gives.
        """
        rng = random.Random(11)
        sample = [fn_key_hash(f"fn-{rng.getrandbits(64):016x}") for _ in range(100_000)]
        for n in range(1, 65):
            shares = Counter(jump_hash(key, n) for key in sample)
            expected = len(sample) / n
            sd = math.sqrt(len(sample) * (1 / n) * (1 - 1 / n))
            for bucket in range(n):
                assert abs(shares[bucket] / len(sample) - 1 / n) <= 0.03, (n, bucket)
                assert abs(shares[bucket] - expected) <= 5 * sd + 1e-9, (n, bucket)

    def test_fn_variant_fails_the_same_bound(self) -> None:
        """Fn's own variant is far off that bound (3 runners: [0.5, 0, 0.5])."""
        rng = random.Random(11)
        sample = [rng.getrandbits(64) for _ in range(100_000)]
        shares = Counter(fn_jump_hash(key, 3) for key in sample)
        assert shares[1] == 0
        assert abs(shares[0] / len(sample) - 0.5) < 0.01


class TestFnSkew:
    def test_fn_variant_never_starts_at_index_one(self) -> None:
        """Fn's integer jump hash never gives bucket 1, so with two runners all start at 0."""
        rng = random.Random(3)
        for _ in range(20_000):
            key = rng.getrandbits(64)
            assert fn_jump_hash(key, 2) == 0
            assert fn_jump_hash(key, 7) != 1
