"""The runner protocol over gRPC (the transport): the runner client, the wire codec, TLS helpers.

The runner service and its server (:mod:`runnerpool.runner`) sit above this package; nothing here
imports them.
"""

from __future__ import annotations

from ._channel import Keepalive as Keepalive
from ._client import DEFAULT_MAX_CONNECTIONS as DEFAULT_MAX_CONNECTIONS
from ._client import GrpcRunner as GrpcRunner
from ._tls import client_tls as client_tls
from ._tls import server_tls as server_tls

__all__ = ["DEFAULT_MAX_CONNECTIONS", "GrpcRunner", "Keepalive", "client_tls", "server_tls"]
