"""Call and status ids: 26 characters of Crockford base32, sortable by creation time.

Fn's ids are 26-character base32 strings made of a timestamp and more bits; runnerpool's are
ULIDs (48 bits of Unix milliseconds, then 80 random bits), the same length and alphabet.
"""

from __future__ import annotations

import os
import time

__all__ = ["new_id"]

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    """Return a new 26-character id that sorts after ids made in earlier milliseconds."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
