"""StaticRunnerPool (ports of static_pool_test.go) and the runner's other RPCs, on the wire."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence

import pytest
from google.protobuf import empty_pb2, struct_pb2
from grpclib.client import Channel
from grpclib.exceptions import GRPCError

from runnerpool import APIError, BufferedCall, Call, RunnerClosedError, StaticRunnerPool
from runnerpool.rpc._proto import runner_pb2 as pb
from runnerpool.rpc._proto.runner_grpc import RunnerProtocolStub
from runnerpool.runner import ContainerLogs, LogLine, RequestLogs
from tests.rpc.conftest import StartRunner, free_port


class TestStaticRunnerPool:
    async def test_unreachable_addresses(self) -> None:
        """Port of TestNewStaticPool: unreachable addresses give runners and no error."""
        addresses = [f"127.0.0.1:{await free_port()}", f"127.0.0.1:{await free_port()}"]
        pool = StaticRunnerPool(addresses)
        runners = await pool.runners(BufferedCall())
        assert [r.address for r in runners] == addresses
        await pool.aclose()

    async def test_empty_pool(self) -> None:
        """Port of TestEmptyPool: no addresses, no runners, a clean shutdown."""
        pool = StaticRunnerPool()
        assert list(await pool.runners(BufferedCall())) == []
        await pool.aclose()

    async def test_shutdown_closes_every_runner(self, start_runner: StartRunner) -> None:
        """After shutdown every runner refuses new calls (RunnerClosedError)."""
        server = await start_runner()
        pool = StaticRunnerPool([server.address, server.address])
        runners = await pool.runners(BufferedCall())
        await pool.aclose()
        for runner in runners:
            with pytest.raises(RunnerClosedError):
                await runner.try_exec(BufferedCall(Call(image="echo")))

    def test_bad_address(self) -> None:
        """A malformed address is refused when the pool is made, naming it."""
        with pytest.raises(ValueError, match="'nope'"):
            StaticRunnerPool(["nope"])


StubFor = Callable[[str], RunnerProtocolStub]


@pytest.fixture
async def stub_for() -> AsyncIterator[StubFor]:
    """Make raw stubs (the wire interface Fn's LBs and tests use); channels close at the end."""
    channels: list[Channel] = []

    def make(address: str) -> RunnerProtocolStub:
        host, port = address.rsplit(":", 1)
        channel = Channel(host, int(port))
        channels.append(channel)
        return RunnerProtocolStub(channel)

    yield make
    for channel in channels:
        channel.close()


class TestStatusRpcs:
    async def test_status_counts(self, start_runner: StartRunner, stub_for: StubFor) -> None:
        """Status reports active, received and handled from the runner's counters."""
        server = await start_runner()
        stub = stub_for(server.address)
        reply = await stub.Status(empty_pb2.Empty())
        assert (reply.active, reply.requestsReceived, reply.requestsHandled) == (0, 0, 0)
        assert not reply.cached

    async def test_status2_passes_the_struct_to_the_health_check(
        self, start_runner: StartRunner, stub_for: StubFor
    ) -> None:
        """Status2's Struct reaches the health check; its map comes back as customStatus."""

        async def check(payload: Mapping[str, object]) -> Mapping[str, str]:
            return {"custom": "works", "echo": json.dumps(payload, sort_keys=True)}

        server = await start_runner(health_check=check)
        stub = stub_for(server.address)
        struct = struct_pb2.Struct()
        struct.update({"fake-member-1": "fake-value-1", "fake-member-2": "fake-value-2"})
        reply = await stub.Status2(struct)
        assert reply.customStatus["custom"] == "works"
        assert json.loads(reply.customStatus["echo"]) == {
            "fake-member-1": "fake-value-1",
            "fake-member-2": "fake-value-2",
        }
        assert reply.id
        assert not reply.failed

    async def test_ten_concurrent_status_share_checks(
        self, start_runner: StartRunner, stub_for: StubFor
    ) -> None:
        """Fn's TestExecuteRunnerStatusConcurrent: 10 concurrent calls, at most 3 status ids."""

        async def check(payload: Mapping[str, object]) -> Mapping[str, str]:
            await asyncio.sleep(0.05)
            return {}

        server = await start_runner(health_check=check)
        stub = stub_for(server.address)
        replies = await asyncio.gather(*(stub.Status(empty_pb2.Empty()) for _ in range(10)))
        assert not any(r.failed for r in replies)
        assert len({r.id for r in replies}) <= 3

    async def test_failing_health_check(self, start_runner: StartRunner, stub_for: StubFor) -> None:
        """Fn's TestCustomHealthChecker: a 450 from the check is errorCode 450, not an RPC error."""

        async def check(payload: Mapping[str, object]) -> Mapping[str, str]:
            raise APIError("custom failure", status_code=450)

        server = await start_runner(health_check=check)
        reply = await stub_for(server.address).Status(empty_pb2.Empty())
        assert (reply.failed, reply.errorCode, reply.errorStr) == (True, 450, "custom failure")


class TestConfigureAndLogs:
    async def test_configure_hook(self, start_runner: StartRunner, stub_for: StubFor) -> None:
        """Fn's TestConfigureRunner: the hook receives the map; the reply is empty."""
        received: list[Mapping[str, str]] = []

        async def configure(config: Mapping[str, str]) -> None:
            received.append(config)

        server = await start_runner(configure=configure)
        stub = stub_for(server.address)
        reply = await stub.ConfigureRunner(pb.ConfigMsg(config={"domain": "unix", "company": "fn"}))
        assert reply == pb.ConfigStatus()
        assert received == [{"domain": "unix", "company": "fn"}]

    async def test_configure_without_hook(
        self, start_runner: StartRunner, stub_for: StubFor
    ) -> None:
        """Without a hook, ConfigureRunner succeeds and does nothing (Fn's default)."""
        server = await start_runner()
        reply = await stub_for(server.address).ConfigureRunner(pb.ConfigMsg(config={"a": "b"}))
        assert reply == pb.ConfigStatus()

    async def test_stream_logs_without_streamer(
        self, start_runner: StartRunner, stub_for: StubFor
    ) -> None:
        """Without a log streamer, StreamLogs fails with Fn's message."""
        server = await start_runner()
        stub = stub_for(server.address)

        async def start_logs() -> None:
            async with stub.StreamLogs.open() as stream:
                await stream.send_message(pb.LogRequestMsg(start=pb.LogRequestMsg.Start()))
                await stream.recv_message()

        with pytest.raises(GRPCError, match="runner not configured with logStreamer"):
            await start_logs()

    async def test_stream_logs(self, start_runner: StartRunner, stub_for: StubFor) -> None:
        """Fn's TestExampleLogStreamer: Start, a batch of lines, Ack, the next batch."""

        class Streamer:
            def __init__(self) -> None:
                self.config: Mapping[str, str] = {}

            async def stream(
                self, config: Mapping[str, str]
            ) -> AsyncIterator[Sequence[ContainerLogs]]:
                self.config = config
                for n in (1, 2):
                    line = LogLine(timestamp_ms=1_700_000_000_000 + n, data=f"line {n}".encode())
                    yield [
                        ContainerLogs("app1", "fun1", "container1", [RequestLogs("101", [line])])
                    ]

        streamer = Streamer()
        server = await start_runner(log_streamer=streamer)
        stub = stub_for(server.address)
        async with stub.StreamLogs.open() as stream:
            await stream.send_message(
                pb.LogRequestMsg(start=pb.LogRequestMsg.Start(config={"k": "v"}))
            )
            first = await stream.recv_message()
            await stream.send_message(pb.LogRequestMsg(ack=pb.LogRequestMsg.Ack()))
            second = await stream.recv_message()
            await stream.send_message(pb.LogRequestMsg(ack=pb.LogRequestMsg.Ack()), end=True)
        assert streamer.config == {"k": "v"}
        assert first is not None
        assert second is not None
        container = first.data[0]
        assert (container.applicationId, container.functionId, container.containerId) == (
            "app1",
            "fun1",
            "container1",
        )
        line = container.data[0].data[0]
        assert (container.data[0].requestId, line.data, line.source) == (
            "101",
            b"line 1",
            pb.LogResponseMsg.Container.Request.Line.STDOUT,
        )
        assert second.data[0].data[0].data[0].data == b"line 2"
