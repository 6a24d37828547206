"""The process and Python runtime metrics every exporter shows: prometheus_client's own.

prometheus_client's default registry holds these three collectors; runnerpool's registries
are its own (an embedder's default registry stays theirs), so the load balancer and the
runner add them here: ``process_*`` (CPU seconds, resident memory, open file descriptors,
start time), ``python_info`` (the interpreter) and ``python_gc_*`` (collections per
generation). A registry is named, not assumed, so a multi-process exporter can put them
where it aggregates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from weakref import WeakKeyDictionary

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.registry import Collector

__all__ = ["register_process_collectors", "unregister_process_collectors"]

_registered: WeakKeyDictionary[CollectorRegistry, tuple[Collector, ...]] = WeakKeyDictionary()


def register_process_collectors(registry: CollectorRegistry) -> None:
    """Add the process, platform and garbage-collector collectors to a registry, once.

    Adding them again to the same registry does nothing.
    """
    if registry in _registered:
        return
    _registered[registry] = (
        ProcessCollector(registry=registry),
        PlatformCollector(registry=registry),
        GCCollector(registry=registry),
    )


def unregister_process_collectors(registry: CollectorRegistry) -> None:
    """Remove the collectors :func:`register_process_collectors` added, if it did."""
    for collector in _registered.pop(registry, ()):
        registry.unregister(collector)
