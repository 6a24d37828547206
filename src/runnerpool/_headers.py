"""HTTP header names that both the load balancer and the runner need."""

from __future__ import annotations

from typing import Final

__all__ = ["HOP_BY_HOP"]

#: Hop-by-hop headers (Go's ``httputil`` list, which Fn strips when it forwards a request):
#: they describe one connection, never the request.
HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "proxy-connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
