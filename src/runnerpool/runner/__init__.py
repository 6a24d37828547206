"""The runner: a process that admits or refuses calls and runs the ones it admits."""

from __future__ import annotations

from ._capacity import Capacity as Capacity
from ._capacity import Reservation as Reservation
from ._executor import Admission as Admission
from ._executor import Execution as Execution
from ._executor import Executor as Executor
from ._health import HealthCheck as HealthCheck
from ._in_process import FunctionRequest as FunctionRequest
from ._in_process import FunctionResponse as FunctionResponse
from ._in_process import Handler as Handler
from ._in_process import InProcessExecutor as InProcessExecutor
from ._logs import ContainerLogs as ContainerLogs
from ._logs import LogLine as LogLine
from ._logs import LogStreamer as LogStreamer
from ._logs import RequestLogs as RequestLogs
from ._metrics import HotProcesses as HotProcesses
from ._metrics import RunnerMetrics as RunnerMetrics
from ._metrics_server import MetricsServer as MetricsServer
from ._serve import serve_runner as serve_runner
from ._server import RunnerServer as RunnerServer
from ._service import ConfigureHook as ConfigureHook
from ._service import RunnerService as RunnerService
from ._settings import RunnerSettings as RunnerSettings

__all__ = [
    "Admission",
    "Capacity",
    "ConfigureHook",
    "ContainerLogs",
    "Execution",
    "Executor",
    "FunctionRequest",
    "FunctionResponse",
    "Handler",
    "HealthCheck",
    "HotProcesses",
    "InProcessExecutor",
    "LogLine",
    "LogStreamer",
    "MetricsServer",
    "RequestLogs",
    "Reservation",
    "RunnerMetrics",
    "RunnerServer",
    "RunnerService",
    "RunnerSettings",
    "serve_runner",
]
