"""The ``runnerpool`` command: a thin click shell over the library's ``serve_*`` functions.

Options mirror Fn's environment variables (``FN_GRPC_PORT``, ``FN_MAX_REQUEST_SIZE``, ...).
One module per command (``runner``, ``status`` and ``logs`` share one); the option blocks
several commands take are written once, in :mod:`runnerpool.cli._options`.
"""

from __future__ import annotations

# Each command module adds its command to the group when imported.
from . import _dev, _lb, _runner, _simulate
from ._group import main as main

__all__ = ["main"]

del _dev, _lb, _runner, _simulate
