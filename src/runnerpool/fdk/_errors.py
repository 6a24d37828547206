"""The errors of running a function as a hot process, with Fn's codes and messages.

::

    FuncError (runnerpool)
    ├── BundleError               502  the image names no usable function bundle
    ├── EnvironmentFailedError    502  its Python environment could not be prepared
    ├── InitFailedError           502  the process exited before it was ready
    ├── InitTimeoutError          504  the process was not ready within the init timeout
    ├── InvalidResponseError      502  the function answered a status Fn does not accept
    ├── ResponseReceiveError      502  the connection to the function broke mid-call
    ├── OutOfMemoryError          502  the process ran out of its memory
    └── ContainerExitError        502  the process exited mid-call
"""

from __future__ import annotations

from typing import ClassVar

from .._errors import FuncError

__all__ = [
    "BundleError",
    "ContainerExitError",
    "EnvironmentFailedError",
    "InitFailedError",
    "InitTimeoutError",
    "InvalidResponseError",
    "OutOfMemoryError",
    "ResponseReceiveError",
]


class BundleError(FuncError):
    """Raised when a call's image names no usable function bundle (502)."""


class EnvironmentFailedError(FuncError):
    """Raised when a bundle's Python environment cannot be prepared (502)."""


class InitFailedError(FuncError):
    """Raised when a function process exits before it is ready (Fn's 502 init failure)."""

    default_message: ClassVar[str] = (
        "container failed to initialize, please ensure you are using the latest fdk"
        " & check the logs"
    )


class InitTimeoutError(FuncError):
    """Raised when a function process is not ready within the init timeout (Fn's 504)."""

    default_status_code: ClassVar[int] = 504
    default_message: ClassVar[str] = (
        "Container initialization timed out, please ensure you are using the latest fdk"
        " & check the logs"
    )


class InvalidResponseError(FuncError):
    """Raised when a function answers a status other than 200, 502 or 504 (502)."""

    default_message: ClassVar[str] = "invalid function response"


class ResponseReceiveError(FuncError):
    """Raised when the connection to a function breaks before its response ends (502)."""

    default_message: ClassVar[str] = "error receiving function response"


class OutOfMemoryError(FuncError):
    """Raised when a function process runs out of its memory and is killed (502)."""

    default_message: ClassVar[str] = (
        "container out of memory, you may want to raise fn.memory for this function"
        " (default: 128MB)"
    )


class ContainerExitError(FuncError):
    """Raised when a function process exits in the middle of a call (502).

    Args:
        code: Its exit code (128 + N for a process killed by signal N, as Docker reports).
        signal_name: The signal that killed it, if one did (e.g. ``"SIGKILL"``).
    """

    def __init__(self, code: int, signal_name: str | None = None) -> None:
        killed = "" if signal_name is None else f" (killed by {signal_name})"
        super().__init__(f"container exit code {code}{killed}")
        self.code = code
        self.signal_name = signal_name
