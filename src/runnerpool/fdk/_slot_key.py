"""Fn's slot key: which calls may share a hot function process.

Two calls share hot processes exactly when their slot keys are equal. The key is the SHA-256
digest Fn's agent computes in ``getSlotQueueKey`` (spec §6.2): everything that shapes the
process (app, function, image, limits, configuration, annotations, driver extensions) goes
into it, so a call never lands on a process started for a different configuration.
"""

from __future__ import annotations

import hashlib
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._model import Call

__all__ = ["slot_key"]

_NUL = b"\0"
# Timeout, IdleTimeout and TmpFsSize as little-endian uint32, then Memory and CPUs as uint64.
_LIMITS = struct.Struct("<IIIQQ")


def slot_key(call: Call, extensions: str = "") -> bytes:
    """Return the raw 32-byte slot key of a call, byte for byte as Fn computes it.

    Args:
        call: The call, with the configuration the runner will give its process (Fn's
            runner adds ``FN_LISTENER`` and ``FN_FORMAT`` before computing the key).
        extensions: The driver's slot key extensions (Fn's Docker driver: ``""``).
    """
    digest = hashlib.sha256()
    for text in (call.app_id, call.syslog_url, call.fn_id, call.image):
        digest.update(text.encode())
        digest.update(_NUL)
    # Go converts the signed int32 fields with uint32(), hence the masks.
    digest.update(
        _LIMITS.pack(
            call.timeout & 0xFFFFFFFF,
            call.idle_timeout & 0xFFFFFFFF,
            call.tmpfs_size,
            call.memory,
            call.cpus,
        )
    )
    digest.update(_NUL)
    # Go's sort.Strings orders by bytes; for UTF-8 that is code point order, as here.
    for key in sorted(call.config):
        digest.update(key.encode() + _NUL + call.config[key].encode() + _NUL)
    digest.update(_NUL)
    for key in sorted(call.annotations):
        digest.update(key.encode() + _NUL + call.annotations[key].encode() + _NUL)
    if extensions:
        digest.update(extensions.encode() + _NUL)
    return digest.digest()
