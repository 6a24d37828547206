"""Hashing for consistent placement: SipHash-2-4 of the function id, then a jump hash.

Both SipHash (``siphashc``) and the canonical jump hash (``jump-consistent-hash``) run in C;
Fn's own integer jump hash is kept in Python for its compatibility mode.
"""

from __future__ import annotations

import jump
import siphashc

__all__ = ["FN_SIPHASH_KEY", "c_jump_hash", "fn_jump_hash", "fn_key_hash", "jump_hash", "siphash"]

#: The C functions themselves, for the placers' hot path (a Python wrapper costs 40 ns).
siphash = siphashc.siphash
c_jump_hash = jump.hash

#: The SipHash key Fn uses: k0 = 0, k1 = 0x4c617279426f6174, as 16 little-endian bytes.
#: ``0x4c617279426f6174`` is "LaryBoat" read big-endian, hence the reversed text.
FN_SIPHASH_KEY = b"\x00" * 8 + b"taoByraL"

_MASK64 = (1 << 64) - 1
_LCG = 2862933555777941757


def fn_key_hash(fn_id: str) -> int:
    """Return Fn's 64-bit placement hash of a function id: SipHash-2-4 with Fn's key.

    Args:
        fn_id: The function id; its UTF-8 bytes are hashed.

    Returns:
        The hash as an unsigned 64-bit integer.
    """
    result: int = siphashc.siphash(FN_SIPHASH_KEY, fn_id.encode())
    return result


def jump_hash(key: int, buckets: int) -> int:
    """Return the canonical (Lamping and Veach) jump consistent hash of a key.

    Growing from ``n`` to ``n + 1`` buckets moves only the keys that land in the new bucket,
    about ``1 / (n + 1)`` of them.

    Args:
        key: An unsigned 64-bit key.
        buckets: The number of buckets.

    Returns:
        A bucket in ``range(buckets)``, or ``-1`` when there are no buckets.
    """
    if buckets <= 0:
        return -1
    result: int = jump.hash(key, buckets)
    return result


def fn_jump_hash(key: int, buckets: int) -> int:
    """Return the bucket Fn's own integer jump hash gives; kept for Fn-exact placement.

    Fn computes ``j = (b + 1) * (2**31 // (key >> 33) + 1)`` in integers where the canonical
    algorithm computes ``(b + 1) * 2**31 / ((key >> 33) + 1)`` in floating point. So Fn never
    lands on bucket 1, and its shares are skewed (``[0.5, 0, 0.5]`` for three buckets).

    When ``key >> 33`` is 0, Go divides by zero and panics (a chance of about 2**-31 per
    step). Here the quotient is taken as infinite, its limit: the jump goes past every
    bucket, and the current bucket is the answer.

    Args:
        key: An unsigned 64-bit key.
        buckets: The number of buckets.

    Returns:
        A bucket in ``range(buckets)``, or ``-1`` when there are no buckets.
    """
    bucket, nxt = -1, 0
    while nxt < buckets:
        bucket = nxt
        key = (key * _LCG + 1) & _MASK64
        high = key >> 33
        if high == 0:
            break
        nxt = (bucket + 1) * ((1 << 31) // high + 1)
    return bucket
