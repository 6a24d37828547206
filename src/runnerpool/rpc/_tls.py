"""TLS contexts for the runner protocol (HTTP/2 over TLS needs ALPN ``h2``)."""

from __future__ import annotations

import ssl

__all__ = ["client_tls", "server_tls"]


def client_tls(
    ca_file: str, *, cert_file: str | None = None, key_file: str | None = None
) -> ssl.SSLContext:
    """Return a TLS context for a load balancer's connections to its runners.

    Args:
        ca_file: PEM file of the authority that signed the runners' certificates.
        cert_file: The load balancer's own certificate, for mutual TLS.
        key_file: Its private key (if not in ``cert_file``).

    Returns:
        A context that verifies runners (their certificate must name the address dialled)
        and offers ``h2``.
    """
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    if cert_file is not None:
        context.load_cert_chain(cert_file, key_file)
    context.set_alpn_protocols(["h2"])
    return context


def server_tls(
    cert_file: str, key_file: str | None = None, *, client_ca_file: str | None = None
) -> ssl.SSLContext:
    """Return a TLS context for a runner's gRPC server.

    Args:
        cert_file: The runner's certificate (PEM).
        key_file: Its private key (if not in ``cert_file``).
        client_ca_file: With it, mutual TLS: only clients with a certificate signed by this
            authority may connect; the others are refused during the handshake.

    Returns:
        The server context, offering ``h2``.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    if client_ca_file is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca_file)
    context.set_alpn_protocols(["h2"])
    return context
