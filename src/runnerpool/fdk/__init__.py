"""Run Fn FDK functions, unchanged, as hot local processes of a runner.

A call's ``image`` names a function bundle (a directory with ``func.py``), which runs under
Fn's Python FDK in its own Python environment, as a hot process reused by later calls of the
same slot key, each in its own sandbox (:class:`Sandbox`). See :class:`FdkExecutor`.
"""

from __future__ import annotations

from ._bundles import Bundle as Bundle
from ._bundles import Bundles as Bundles
from ._cgroups import default_memory_mb as default_memory_mb
from ._environments import Environments as Environments
from ._errors import BundleError as BundleError
from ._errors import ContainerExitError as ContainerExitError
from ._errors import EnvironmentFailedError as EnvironmentFailedError
from ._errors import InitFailedError as InitFailedError
from ._errors import InitTimeoutError as InitTimeoutError
from ._errors import InvalidResponseError as InvalidResponseError
from ._errors import OutOfMemoryError as OutOfMemoryError
from ._errors import ResponseReceiveError as ResponseReceiveError
from ._executor import DEFAULT_INIT_TIMEOUT as DEFAULT_INIT_TIMEOUT
from ._executor import FdkExecutor as FdkExecutor
from ._executor import process_config as process_config
from ._output import LogBook as LogBook
from ._sandbox import Sandbox as Sandbox
from ._sandbox import SandboxUnavailableError as SandboxUnavailableError
from ._sandbox import host_sandbox as host_sandbox
from ._slot_key import slot_key as slot_key

__all__ = [
    "DEFAULT_INIT_TIMEOUT",
    "Bundle",
    "BundleError",
    "Bundles",
    "ContainerExitError",
    "EnvironmentFailedError",
    "Environments",
    "FdkExecutor",
    "InitFailedError",
    "InitTimeoutError",
    "InvalidResponseError",
    "LogBook",
    "OutOfMemoryError",
    "ResponseReceiveError",
    "Sandbox",
    "SandboxUnavailableError",
    "default_memory_mb",
    "host_sandbox",
    "process_config",
    "slot_key",
]
