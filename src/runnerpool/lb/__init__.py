"""The load balancer: Fn's invoke API over HTTP, placing calls on runners.

:func:`serve_lb` runs one until SIGINT or SIGTERM, with an :class:`LBSettings`;
:func:`create_app` is its ASGI application, to serve or test on its own. The functions it
serves come from a :class:`Registry` (a functions file, re-read by :class:`LiveRegistry`) or
from Fn's API server (:class:`ApiSource`), or from a folder of FDK bundles
(:func:`registry_from_bundles`, as ``runnerpool dev --bundles`` serves them).
:func:`run_workers` runs several load balancers on one port, each in a process of its own
(``runnerpool lb --workers N``).
"""

from __future__ import annotations

from ._api_source import ApiSource as ApiSource
from ._api_source import ApiSourceSettings as ApiSourceSettings
from ._api_source import api_base_url as api_base_url
from ._api_source import log_retry as log_retry
from ._app import create_app as create_app
from ._bundle_registry import bundle_directories as bundle_directories
from ._bundle_registry import registry_from_bundles as registry_from_bundles
from ._limits import EdgeLimits as EdgeLimits
from ._live import LiveRegistry as LiveRegistry
from ._registry import App as App
from ._registry import ConfigError as ConfigError
from ._registry import Function as Function
from ._registry import Registry as Registry
from ._registry import Trigger as Trigger
from ._serve import serve_lb as serve_lb
from ._settings import LBSettings as LBSettings
from ._workers import WorkerContext as WorkerContext
from ._workers import default_workers as default_workers
from ._workers import run_workers as run_workers

__all__ = [
    "ApiSource",
    "ApiSourceSettings",
    "App",
    "ConfigError",
    "EdgeLimits",
    "Function",
    "LBSettings",
    "LiveRegistry",
    "Registry",
    "Trigger",
    "WorkerContext",
    "api_base_url",
    "bundle_directories",
    "create_app",
    "default_workers",
    "log_retry",
    "registry_from_bundles",
    "run_workers",
    "serve_lb",
]
