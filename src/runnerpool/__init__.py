"""runnerpool: call placement for serverless function platforms.

A placer decides which runner runs each call, trying runners in the order it chooses until
one takes the call. The port of Fn Project's Go package ``api/runnerpool``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from ._call import BufferedCall as BufferedCall
from ._call import BufferedResponse as BufferedResponse
from ._config import BackoffMode as BackoffMode
from ._config import PlacerConfig as PlacerConfig
from ._errors import APIError as APIError
from ._errors import CallTimeoutError as CallTimeoutError
from ._errors import FuncError as FuncError
from ._errors import FunctionFailedError as FunctionFailedError
from ._errors import NoRunnerReachableError as NoRunnerReachableError
from ._errors import NotPlacedError as NotPlacedError
from ._errors import PartialRunnersError as PartialRunnersError
from ._errors import RequestTooLargeError as RequestTooLargeError
from ._errors import ResponseTooLargeError as ResponseTooLargeError
from ._errors import RunnerBusyError as RunnerBusyError
from ._errors import RunnerClosedError as RunnerClosedError
from ._errors import RunnerConnectionError as RunnerConnectionError
from ._errors import RunnerPoolError as RunnerPoolError
from ._errors import RunnerProtocolError as RunnerProtocolError
from ._errors import RunnerUnavailableError as RunnerUnavailableError
from ._errors import ServerBusyError as ServerBusyError
from ._interfaces import LogWriter as LogWriter
from ._interfaces import Placer as Placer
from ._interfaces import ResponseWriter as ResponseWriter
from ._interfaces import Runner as Runner
from ._interfaces import RunnerCall as RunnerCall
from ._interfaces import RunnerPool as RunnerPool
from ._model import Call as Call
from ._resource import AsyncResource as AsyncResource
from ._status import RunnerStatus as RunnerStatus
from .placers import BasePlacer as BasePlacer
from .placers import BoundedLoadPlacer as BoundedLoadPlacer
from .placers import CHPlacer as CHPlacer
from .placers import LeastLoadedPlacer as LeastLoadedPlacer
from .placers import NaivePlacer as NaivePlacer
from .placers import PlacerRuntime as PlacerRuntime
from .placers import PlacerTracker as PlacerTracker
from .placers import RendezvousPlacer as RendezvousPlacer
from .placers import WarmBoundedPlacer as WarmBoundedPlacer
from .placers import create_placer as create_placer
from .pools import OutlierPolicy as OutlierPolicy
from .pools import StaticRunnerPool as StaticRunnerPool
from .rpc import GrpcRunner as GrpcRunner
from .rpc import Keepalive as Keepalive
from .rpc import client_tls as client_tls
from .rpc import server_tls as server_tls

try:
    __version__ = version("runnerpool")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "APIError",
    "AsyncResource",
    "BackoffMode",
    "BasePlacer",
    "BoundedLoadPlacer",
    "BufferedCall",
    "BufferedResponse",
    "CHPlacer",
    "Call",
    "CallTimeoutError",
    "FuncError",
    "FunctionFailedError",
    "GrpcRunner",
    "Keepalive",
    "LeastLoadedPlacer",
    "LogWriter",
    "NaivePlacer",
    "NoRunnerReachableError",
    "NotPlacedError",
    "OutlierPolicy",
    "PartialRunnersError",
    "Placer",
    "PlacerConfig",
    "PlacerRuntime",
    "PlacerTracker",
    "RendezvousPlacer",
    "RequestTooLargeError",
    "ResponseTooLargeError",
    "ResponseWriter",
    "Runner",
    "RunnerBusyError",
    "RunnerCall",
    "RunnerClosedError",
    "RunnerConnectionError",
    "RunnerPool",
    "RunnerPoolError",
    "RunnerProtocolError",
    "RunnerStatus",
    "RunnerUnavailableError",
    "ServerBusyError",
    "StaticRunnerPool",
    "WarmBoundedPlacer",
    "__version__",
    "client_tls",
    "create_placer",
    "server_tls",
]
