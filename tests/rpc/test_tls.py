"""TLS and mutual TLS between GrpcRunner and a real runner, with certificates made by trustme."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from runnerpool import (
    BufferedCall,
    Call,
    GrpcRunner,
    NotPlacedError,
    RunnerConnectionError,
    RunnerPoolError,
    RunnerUnavailableError,
    client_tls,
    server_tls,
)
from runnerpool.examples import FUNCTIONS
from runnerpool.runner import InProcessExecutor, RunnerServer, RunnerService

pytestmark = pytest.mark.timeout(30)


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA with a server and a client certificate, and another CA with a client."""

    ca: str
    server_cert: str
    server_key: str
    client_cert: str
    client_key: str
    other_ca: str
    other_client_cert: str
    other_client_key: str


def write_leaf(leaf: trustme.LeafCert, directory: Path, name: str) -> tuple[str, str]:
    """Write a certificate (with its chain) and its key to two PEM files; return their paths."""
    cert = directory / f"{name}.crt"
    key = directory / f"{name}.key"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    return str(cert), str(key)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Certificates for 127.0.0.1 and for a load balancer, from two unrelated CAs."""
    directory = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    other_ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    other_ca.cert_pem.write_to_path(str(directory / "other-ca.pem"))
    server_cert, server_key = write_leaf(ca.issue_cert("127.0.0.1"), directory, "server")
    client_cert, client_key = write_leaf(ca.issue_cert("lb.example.org"), directory, "client")
    other_cert, other_key = write_leaf(
        other_ca.issue_cert("lb.example.org"), directory, "other-client"
    )
    return Pki(
        ca=str(directory / "ca.pem"),
        server_cert=server_cert,
        server_key=server_key,
        client_cert=client_cert,
        client_key=client_key,
        other_ca=str(directory / "other-ca.pem"),
        other_client_cert=other_cert,
        other_client_key=other_key,
    )


@pytest.fixture
async def tls_server(pki: Pki) -> AsyncIterator[RunnerServer]:
    """A runner serving the examples over TLS, without client authentication."""
    service = RunnerService(InProcessExecutor(FUNCTIONS))
    context = server_tls(pki.server_cert, pki.server_key)
    async with RunnerServer(service, host="127.0.0.1", port=0, ssl=context) as server:
        yield server


@pytest.fixture
async def mtls_server(pki: Pki) -> AsyncIterator[RunnerServer]:
    """A runner serving the examples over mutual TLS: clients need a certificate from the CA."""
    service = RunnerService(InProcessExecutor(FUNCTIONS))
    context = server_tls(pki.server_cert, pki.server_key, client_ca_file=pki.ca)
    async with RunnerServer(service, host="127.0.0.1", port=0, ssl=context) as server:
        yield server


async def echo(server: RunnerServer, context: ssl.SSLContext | None) -> BufferedCall:
    """Send "hi" to echo through a new GrpcRunner, closed afterwards."""
    runner = GrpcRunner(server.address, ssl=context)
    call = BufferedCall(Call(id="c1", image="echo", timeout=10), body=b"hi")
    try:
        await runner.try_exec(call)
    finally:
        await runner.aclose()
    return call


async def refused(server: RunnerServer, context: ssl.SSLContext | None) -> RunnerPoolError:
    """Assert that an echo through ``context`` fails with a runnerpool error; return the error.

    The runner's handler must never have run: it received no request.
    """
    with pytest.raises(RunnerPoolError) as caught:
        await echo(server, context)
    assert (await server.service.status()).requests_received == 0
    return caught.value


class TestTls:
    async def test_client_trusting_the_ca(self, pki: Pki, tls_server: RunnerServer) -> None:
        """A client that trusts the runner's CA gets the echo over TLS."""
        call = await echo(tls_server, client_tls(pki.ca))
        assert bytes(call.response_writer.body) == b"hi"
        assert (await tls_server.service.status()).requests_received == 1

    async def test_client_not_trusting_the_ca(self, pki: Pki, tls_server: RunnerServer) -> None:
        """A client that trusts another CA refuses the runner: not placed, nothing received."""
        error = await refused(tls_server, client_tls(pki.other_ca))
        # The handshake fails in the client's connect, before any TryCall was sent.
        assert isinstance(error, RunnerUnavailableError)
        assert isinstance(error.__cause__, ssl.SSLCertVerificationError)

    async def test_plaintext_client(self, tls_server: RunnerServer) -> None:
        """A plaintext client to a TLS runner fails with a runnerpool error."""
        error = await refused(tls_server, None)
        # Observed: RunnerConnectionError ("Connection lost"). The TCP connect succeeds, so
        # the TryCall is written before the runner's failed handshake closes the connection.
        assert isinstance(error, RunnerUnavailableError | RunnerConnectionError)


class TestMutualTls:
    async def test_client_with_certificate(self, pki: Pki, mtls_server: RunnerServer) -> None:
        """A client with a certificate signed by the CA gets the echo over mutual TLS."""
        context = client_tls(pki.ca, cert_file=pki.client_cert, key_file=pki.client_key)
        call = await echo(mtls_server, context)
        assert bytes(call.response_writer.body) == b"hi"
        assert (await mtls_server.service.status()).requests_received == 1

    async def test_client_without_certificate(self, pki: Pki, mtls_server: RunnerServer) -> None:
        """A client without a certificate is refused, and the runner never sees the call."""
        error = await refused(mtls_server, client_tls(pki.ca))
        # Observed with TLS 1.3: RunnerConnectionError ("Connection lost"). The client's
        # handshake completes before the runner checks the client certificate, so the
        # refusal only shows after the TryCall was written, and the call counts as committed.
        assert isinstance(error, RunnerUnavailableError | RunnerConnectionError)

    async def test_client_without_certificate_tls_1_2(
        self, pki: Pki, mtls_server: RunnerServer
    ) -> None:
        """With TLS 1.2 the refusal comes during the handshake: the call is not placed."""
        context = client_tls(pki.ca)
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        error = await refused(mtls_server, context)
        assert isinstance(error, RunnerUnavailableError)

    async def test_client_from_another_ca(self, pki: Pki, mtls_server: RunnerServer) -> None:
        """A client whose certificate another CA signed is refused the same way."""
        context = client_tls(pki.ca, cert_file=pki.other_client_cert, key_file=pki.other_client_key)
        error = await refused(mtls_server, context)
        # Observed with TLS 1.3: RunnerConnectionError, as for a client without a certificate.
        assert isinstance(error, RunnerUnavailableError | RunnerConnectionError)

    async def test_client_cert_alone_is_not_trust(
        self, pki: Pki, mtls_server: RunnerServer
    ) -> None:
        """A client with a valid certificate that does not trust the runner's CA is not placed."""
        context = client_tls(pki.other_ca, cert_file=pki.client_cert, key_file=pki.client_key)
        error = await refused(mtls_server, context)
        assert isinstance(error, NotPlacedError)
