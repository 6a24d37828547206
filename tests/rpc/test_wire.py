"""Wire compatibility with Fn's runner protocol: every message against bytes written by hand.

The expected bytes are worked out from the protobuf wire format, not by protobuf: a tag is
``field_number << 3 | wire_type`` as a varint (wire type 0 for varints, 2 for length-delimited
fields), integers are varints (negative int32 and int64 take ten bytes), strings, bytes and
sub-messages are a varint length then the content, and a map is a repeated entry message with
the key in field 1 and the value in field 2. Proto3 leaves out fields at their default value.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from google.protobuf import empty_pb2, struct_pb2
from google.protobuf.message import Message
from grpclib.client import Channel
from grpclib.const import Cardinality

from runnerpool import (
    APIError,
    FuncError,
    NotPlacedError,
    RunnerBusyError,
    RunnerStatus,
)
from runnerpool.rpc._codec import (
    MAX_DATA_CHUNK,
    error_from_finished,
    frames,
    parse_date,
    status_from_pb,
    status_to_pb,
    try_message,
)
from runnerpool.rpc._proto import runner_pb2 as pb
from runnerpool.rpc._proto.runner_grpc import RunnerProtocolStub
from runnerpool.runner import InProcessExecutor, RunnerService
from runnerpool.runner._server import _Handler

Line = pb.LogResponseMsg.Container.Request.Line


def wire(*parts: str | bytes) -> bytes:
    """Join hand-written wire bytes: ``str`` parts are hex, ``bytes`` parts are taken as is."""
    return b"".join(bytes.fromhex(part) if isinstance(part, str) else part for part in parts)


def check_wire(message: Message, expected: bytes) -> Message:
    """Assert that ``message`` serializes to ``expected`` and that ``expected`` parses back to it.

    Returns:
        The message parsed from ``expected``.
    """
    assert message.SerializeToString(deterministic=True).hex(" ") == expected.hex(" ")
    parsed = type(message).FromString(expected)
    assert parsed == message
    assert parsed.ListFields() == message.ListFields()
    return parsed


# -- Messages reused inside others, with their hand-written bytes. ------------------------------

# '{"id":"c1"}' is 11 bytes; a map entry {"k": "v"} is 0a 01 'k' 12 01 'v' (6 bytes).
TRY_CALL = wire("0a 0b", b'{"id":"c1"}', "12 04", b"ab12", "1a 06 0a 01", b"k", "12 01", b"v")


def try_call() -> pb.TryCall:
    return pb.TryCall(models_call_json='{"id":"c1"}', slot_hash_id="ab12", extensions={"k": "v"})


DATA_FRAME = wire("0a 03 00 ff 10", "10 01")


def data_frame() -> pb.DataFrame:
    return pb.DataFrame(data=b"\x00\xff\x10", eof=True)


# Field 100, wire type 2: 100 << 3 | 2 = 802 = varint a2 06. Inside, 200 = varint c8 01.
CALL_RESULT_START = wire("a2 06 0b", "08 c8 01", "12 06 0a 01", b"a", "12 01", b"b")


def call_result_start() -> pb.CallResultStart:
    return pb.CallResultStart(
        http=pb.HttpRespMeta(status_code=200, headers=[pb.HttpHeader(key="a", value="b")])
    )


CREATED = b"2024-01-02T03:04:05.006Z"  # 24 bytes: length 18
STARTED = b"2024-01-02T03:04:05.007Z"
COMPLETED = b"2024-01-02T03:04:05.008Z"

CALL_FINISHED = wire(
    "08 01",  # 1 success = true
    "12 02",
    b"c1",  # 2 details
    "18 ff ff ff ff ff ff ff ff ff 01",  # 3 errorCode = -1: an int32 sign-extends to 10 bytes
    "22 04",
    b"boom",  # 4 errorStr
    "2a 18",
    CREATED,  # 5 createdAt
    "32 18",
    STARTED,  # 6 startedAt
    "3a 18",
    COMPLETED,  # 7 completedAt
    "40 fe ff ff ff ff ff ff ff ff 01",  # 8 schedulerDuration = -2
    "48 80 de a0 cb 05",  # 9 executionDuration = 1 500 000 000
    "50 01",  # 10 errorUser = true
    "5a 04",
    b"fn/x",  # 11 image
    "60 ac 02",  # 12 imagePullWaitDuration = 300
    "68 01",  # 13 ctrPrepDuration = 1
    "70 ff ff ff ff ff ff ff ff 7f",  # 14 ctrCreateDuration = 2**63 - 1
    "78 80 01",  # 15 initStartTime = 128
)  # 144 bytes in all


def call_finished() -> pb.CallFinished:
    return pb.CallFinished(
        success=True,
        details="c1",
        errorCode=-1,
        errorStr="boom",
        createdAt=CREATED.decode(),
        startedAt=STARTED.decode(),
        completedAt=COMPLETED.decode(),
        schedulerDuration=-2,
        executionDuration=1_500_000_000,
        errorUser=True,
        image="fn/x",
        imagePullWaitDuration=300,
        ctrPrepDuration=1,
        ctrCreateDuration=2**63 - 1,
        initStartTime=128,
    )


class TestMessageBytes:
    def test_try_call(self) -> None:
        """TryCall: the call JSON (1), the slot hash (2) and a one-entry extensions map (3)."""
        parsed = check_wire(try_call(), TRY_CALL)
        assert isinstance(parsed, pb.TryCall)
        assert dict(parsed.extensions) == {"k": "v"}
        assert parsed.slot_hash_id == "ab12"

    def test_data_frame(self) -> None:
        """DataFrame: raw bytes (1) and eof (2)."""
        parsed = check_wire(data_frame(), DATA_FRAME)
        assert isinstance(parsed, pb.DataFrame)
        assert parsed.data == b"\x00\xff\x10"
        assert parsed.eof is True

    def test_http_header(self) -> None:
        """HttpHeader: key (1) and value (2)."""
        expected = wire("0a 0c", b"Content-Type", "12 0a", b"text/plain")
        parsed = check_wire(pb.HttpHeader(key="Content-Type", value="text/plain"), expected)
        assert isinstance(parsed, pb.HttpHeader)
        assert (parsed.key, parsed.value) == ("Content-Type", "text/plain")

    def test_http_resp_meta(self) -> None:
        """HttpRespMeta: a two-byte varint status (201 = c9 01) and headers repeated in order."""
        message = pb.HttpRespMeta(
            status_code=201,
            headers=[pb.HttpHeader(key="a", value="b"), pb.HttpHeader(key="c", value="d")],
        )
        expected = wire(
            "08 c9 01",
            "12 06 0a 01",
            b"a",
            "12 01",
            b"b",
            "12 06 0a 01",
            b"c",
            "12 01",
            b"d",
        )
        parsed = check_wire(message, expected)
        assert isinstance(parsed, pb.HttpRespMeta)
        assert parsed.status_code == 201
        assert [(h.key, h.value) for h in parsed.headers] == [("a", "b"), ("c", "d")]

    def test_call_result_start(self) -> None:
        """CallResultStart.http is field 100, so its tag takes two bytes (a2 06)."""
        parsed = check_wire(call_result_start(), CALL_RESULT_START)
        assert isinstance(parsed, pb.CallResultStart)
        assert parsed.WhichOneof("meta") == "http"
        assert parsed.http.status_code == 200

    def test_call_result_start_with_empty_http(self) -> None:
        """A set but empty http oneof (the detached 202 aside) is still sent, with length 0."""
        parsed = check_wire(pb.CallResultStart(http=pb.HttpRespMeta()), wire("a2 06 00"))
        assert isinstance(parsed, pb.CallResultStart)
        assert parsed.WhichOneof("meta") == "http"

    def test_call_finished(self) -> None:
        """CallFinished: all 15 fields, with negative int32/int64 and the largest int64."""
        assert len(CALL_FINISHED) == 144
        parsed = check_wire(call_finished(), CALL_FINISHED)
        assert isinstance(parsed, pb.CallFinished)
        assert parsed.errorCode == -1
        assert parsed.schedulerDuration == -2
        assert parsed.executionDuration == 1_500_000_000
        assert parsed.ctrCreateDuration == 2**63 - 1
        assert parsed.errorUser is True
        assert parsed.completedAt == "2024-01-02T03:04:05.008Z"

    def test_client_msg_try(self) -> None:
        """ClientMsg.try is field 1, holding a whole TryCall (27 bytes)."""
        message = try_message(try_call())
        parsed = check_wire(message, wire("0a 1b", TRY_CALL))
        assert isinstance(parsed, pb.ClientMsg)
        assert parsed.WhichOneof("body") == "try"
        assert getattr(parsed, "try") == try_call()

    def test_client_msg_data(self) -> None:
        """ClientMsg.data is field 2, holding a DataFrame."""
        parsed = check_wire(pb.ClientMsg(data=data_frame()), wire("12 07", DATA_FRAME))
        assert isinstance(parsed, pb.ClientMsg)
        assert parsed.WhichOneof("body") == "data"
        assert parsed.data == data_frame()

    def test_client_msg_eof_frame(self) -> None:
        """The LB's last frame, an empty DataFrame with eof, is 12 02 10 01."""
        message = pb.ClientMsg(data=pb.DataFrame(eof=True))
        parsed = check_wire(message, wire("12 02 10 01"))
        assert isinstance(parsed, pb.ClientMsg)
        assert parsed.data.eof is True
        assert parsed.data.data == b""

    def test_runner_msg_result_start(self) -> None:
        """RunnerMsg.result_start is field 1, holding a CallResultStart."""
        message = pb.RunnerMsg(result_start=call_result_start())
        parsed = check_wire(message, wire("0a 0e", CALL_RESULT_START))
        assert isinstance(parsed, pb.RunnerMsg)
        assert parsed.WhichOneof("body") == "result_start"
        assert parsed.result_start.http.headers[0].key == "a"

    def test_runner_msg_data(self) -> None:
        """RunnerMsg.data is field 2, holding a DataFrame."""
        parsed = check_wire(pb.RunnerMsg(data=data_frame()), wire("12 07", DATA_FRAME))
        assert isinstance(parsed, pb.RunnerMsg)
        assert parsed.WhichOneof("body") == "data"
        assert parsed.data.data == b"\x00\xff\x10"

    def test_runner_msg_finished(self) -> None:
        """RunnerMsg.finished is field 3; its 144-byte CallFinished has a two-byte length."""
        message = pb.RunnerMsg(finished=call_finished())
        parsed = check_wire(message, wire("1a 90 01", CALL_FINISHED))
        assert isinstance(parsed, pb.RunnerMsg)
        assert parsed.WhichOneof("body") == "finished"
        assert parsed.finished == call_finished()

    def test_runner_status(self) -> None:
        """RunnerStatus: fields 2 to 22, uint64 counters, and two-byte tags from field 16 on."""
        message = pb.RunnerStatus(
            active=3,
            failed=True,
            id="s1",
            details="ok",
            errorCode=450,
            errorStr="bad",
            createdAt=CREATED.decode(),
            startedAt=STARTED.decode(),
            completedAt=COMPLETED.decode(),
            cached=True,
            requestsReceived=2**64 - 1,
            requestsHandled=2**32,
            kdumpsOnDisk=1,
            schedulerDuration=-1,
            executionDuration=1000,
            isNetworkDisabled=True,
            customStatus={"k": "v"},
            imagePullWaitDuration=2,
            ctrPrepDuration=3,
            ctrCreateDuration=4,
            initStartTime=5,
        )
        expected = wire(
            "10 03",  # 2 active
            "18 01",  # 3 failed
            "22 02",
            b"s1",  # 4 id
            "2a 02",
            b"ok",  # 5 details
            "30 c2 03",  # 6 errorCode = 450
            "3a 03",
            b"bad",  # 7 errorStr
            "42 18",
            CREATED,  # 8 createdAt
            "4a 18",
            STARTED,  # 9 startedAt
            "52 18",
            COMPLETED,  # 10 completedAt
            "58 01",  # 11 cached
            "60 ff ff ff ff ff ff ff ff ff 01",  # 12 requestsReceived = 2**64 - 1
            "68 80 80 80 80 10",  # 13 requestsHandled = 2**32
            "70 01",  # 14 kdumpsOnDisk
            "78 ff ff ff ff ff ff ff ff ff 01",  # 15 schedulerDuration = -1
            "80 01 e8 07",  # 16 executionDuration = 1000 (tag 128 = 80 01)
            "88 01 01",  # 17 isNetworkDisabled
            "92 01 06 0a 01",
            b"k",
            "12 01",
            b"v",  # 18 customStatus {"k": "v"}
            "98 01 02",  # 19 imagePullWaitDuration
            "a0 01 03",  # 20 ctrPrepDuration
            "a8 01 04",  # 21 ctrCreateDuration
            "b0 01 05",  # 22 initStartTime
        )
        parsed = check_wire(message, expected)
        assert isinstance(parsed, pb.RunnerStatus)
        assert parsed.requestsReceived == 2**64 - 1
        assert parsed.requestsHandled == 2**32
        assert parsed.schedulerDuration == -1
        assert dict(parsed.customStatus) == {"k": "v"}

    def test_runner_status_has_no_field_1(self) -> None:
        """RunnerStatus has no field 1: a field 1 on the wire is kept as unknown, not read."""
        assert 1 not in pb.RunnerStatus.DESCRIPTOR.fields_by_number
        assert sorted(pb.RunnerStatus.DESCRIPTOR.fields_by_number) == list(range(2, 23))
        parsed = pb.RunnerStatus.FromString(wire("08 07", "10 03"))
        assert parsed.active == 3
        assert parsed.ListFields() == [(pb.RunnerStatus.DESCRIPTOR.fields_by_number[2], 3)]
        # The unknown field survives a round trip, as Fn's Go code keeps it too.
        assert parsed.SerializeToString() == wire("10 03", "08 07")

    def test_config_msg(self) -> None:
        """ConfigMsg: a one-entry map in field 1."""
        parsed = check_wire(
            pb.ConfigMsg(config={"a": "1"}), wire("0a 06 0a 01", b"a", "12 01", b"1")
        )
        assert isinstance(parsed, pb.ConfigMsg)
        assert dict(parsed.config) == {"a": "1"}

    def test_config_status(self) -> None:
        """ConfigStatus has no fields: it is zero bytes."""
        parsed = check_wire(pb.ConfigStatus(), b"")
        assert isinstance(parsed, pb.ConfigStatus)
        assert not pb.ConfigStatus.DESCRIPTOR.fields

    def test_log_request_start(self) -> None:
        """LogRequestMsg.start is field 1, a Start with a one-entry config map."""
        message = pb.LogRequestMsg(start=pb.LogRequestMsg.Start(config={"k": "v"}))
        parsed = check_wire(message, wire("0a 08 0a 06 0a 01", b"k", "12 01", b"v"))
        assert isinstance(parsed, pb.LogRequestMsg)
        assert parsed.WhichOneof("body") == "start"
        assert dict(parsed.start.config) == {"k": "v"}

    def test_log_request_ack(self) -> None:
        """LogRequestMsg.ack is field 2, an empty message sent with length 0."""
        parsed = check_wire(pb.LogRequestMsg(ack=pb.LogRequestMsg.Ack()), wire("12 00"))
        assert isinstance(parsed, pb.LogRequestMsg)
        assert parsed.WhichOneof("body") == "ack"

    def test_log_request_ready(self) -> None:
        """LogRequestMsg.ready is field 3, an empty message sent with length 0."""
        parsed = check_wire(pb.LogRequestMsg(ready=pb.LogRequestMsg.Ready()), wire("1a 00"))
        assert isinstance(parsed, pb.LogRequestMsg)
        assert parsed.WhichOneof("body") == "ready"

    def test_log_response(self) -> None:
        """LogResponseMsg: nested Container, Request and Line, STDERR as 1 and STDOUT omitted."""
        message = pb.LogResponseMsg(
            data=[
                pb.LogResponseMsg.Container(
                    applicationId="app",
                    functionId="fn",
                    containerId="ctr",
                    data=[
                        pb.LogResponseMsg.Container.Request(
                            requestId="r1",
                            data=[
                                Line(
                                    timestamp=1_700_000_000_123, source=Line.STDERR, data=b"oops\n"
                                ),
                                Line(timestamp=1, source=Line.STDOUT, data=b"x"),
                            ],
                        )
                    ],
                )
            ]
        )
        line_1 = wire("08 fb d0 95 ff bc 31", "10 01", "1a 05", b"oops\n")  # 16 bytes
        line_2 = wire("08 01", "1a 01", b"x")  # 5 bytes; source STDOUT is the default
        request = wire("0a 02", b"r1", "12 10", line_1, "12 05", line_2)  # 29 bytes
        container = wire(
            "0a 03", b"app", "12 02", b"fn", "1a 03", b"ctr", "22 1d", request
        )  # 45 bytes
        parsed = check_wire(message, wire("0a 2d", container))
        assert isinstance(parsed, pb.LogResponseMsg)
        lines = parsed.data[0].data[0].data
        assert [line.source for line in lines] == [Line.STDERR, Line.STDOUT]
        assert lines[0].timestamp == 1_700_000_000_123
        assert parsed.data[0].containerId == "ctr"
        assert parsed.data[0].data[0].requestId == "r1"

    def test_source_enum_numbers(self) -> None:
        """The Source enum is STDOUT = 0, STDERR = 1."""
        assert Line.Source.Value("STDOUT") == 0
        assert Line.Source.Value("STDERR") == 1
        assert Line.Source.keys() == ["STDOUT", "STDERR"]


class TestNames:
    def test_message_names_have_no_package(self) -> None:
        """The proto file has no package, so every message's full name is its bare name."""
        assert pb.DESCRIPTOR.package == ""
        assert pb.TryCall.DESCRIPTOR.full_name == "TryCall"
        assert pb.ClientMsg.DESCRIPTOR.full_name == "ClientMsg"
        assert pb.RunnerMsg.DESCRIPTOR.full_name == "RunnerMsg"
        assert pb.RunnerStatus.DESCRIPTOR.full_name == "RunnerStatus"
        assert Line.DESCRIPTOR.full_name == "LogResponseMsg.Container.Request.Line"
        assert pb.DESCRIPTOR.services_by_name["RunnerProtocol"].full_name == "RunnerProtocol"

    def test_server_method_paths(self) -> None:
        """The served methods are exactly Fn's five paths, with their cardinality and types."""
        mapping = _Handler(RunnerService(InProcessExecutor({}))).__mapping__()
        assert set(mapping) == {
            "/RunnerProtocol/Engage",
            "/RunnerProtocol/Status",
            "/RunnerProtocol/ConfigureRunner",
            "/RunnerProtocol/StreamLogs",
            "/RunnerProtocol/Status2",
        }
        shapes = {
            path: (handler.cardinality, handler.request_type, handler.reply_type)
            for path, handler in mapping.items()
        }
        assert shapes == {
            "/RunnerProtocol/Engage": (Cardinality.STREAM_STREAM, pb.ClientMsg, pb.RunnerMsg),
            "/RunnerProtocol/Status": (Cardinality.UNARY_UNARY, empty_pb2.Empty, pb.RunnerStatus),
            "/RunnerProtocol/ConfigureRunner": (
                Cardinality.UNARY_UNARY,
                pb.ConfigMsg,
                pb.ConfigStatus,
            ),
            "/RunnerProtocol/StreamLogs": (
                Cardinality.STREAM_STREAM,
                pb.LogRequestMsg,
                pb.LogResponseMsg,
            ),
            "/RunnerProtocol/Status2": (
                Cardinality.UNARY_UNARY,
                struct_pb2.Struct,
                pb.RunnerStatus,
            ),
        }

    async def test_client_method_paths(self) -> None:
        """The client stub calls the same five paths."""
        channel = Channel("127.0.0.1", 1)
        try:
            stub = RunnerProtocolStub(channel)
            names = {
                stub.Engage.name,
                stub.Status.name,
                stub.ConfigureRunner.name,
                stub.StreamLogs.name,
                stub.Status2.name,
            }
        finally:
            channel.close()
        assert names == {
            "/RunnerProtocol/Engage",
            "/RunnerProtocol/Status",
            "/RunnerProtocol/ConfigureRunner",
            "/RunnerProtocol/StreamLogs",
            "/RunnerProtocol/Status2",
        }


async def body_of(*chunks: bytes) -> AsyncIterator[bytes]:
    """Yield the chunks of a request body."""
    for chunk in chunks:
        yield chunk


class TestFrames:
    async def test_large_body(self) -> None:
        """A 25 600-byte body goes as 10 240, 10 240 and 5 120 bytes, then an empty eof frame."""
        body = bytes(range(256)) * 100
        sent = [message async for message in frames(body_of(body))]
        assert all(message.WhichOneof("body") == "data" for message in sent)
        assert [len(message.data.data) for message in sent] == [10240, 10240, 5120, 0]
        assert [message.data.eof for message in sent] == [False, False, False, True]
        assert b"".join(message.data.data for message in sent) == body
        assert MAX_DATA_CHUNK == 10240

    async def test_empty_body(self) -> None:
        """An empty body is a single empty eof frame, 12 02 10 01 on the wire."""
        sent = [message async for message in frames(body_of())]
        assert [message.SerializeToString() for message in sent] == [wire("12 02 10 01")]

    async def test_exact_chunk(self) -> None:
        """A body of exactly 10 240 bytes is one full frame, then the empty eof frame."""
        sent = [message async for message in frames(body_of(b"y" * 10240))]
        assert [(len(m.data.data), m.data.eof) for m in sent] == [(10240, False), (0, True)]


class TestStatus:
    def test_round_trip(self) -> None:
        """Every field of a RunnerStatus survives status_to_pb then status_from_pb."""
        status = RunnerStatus(
            active_request_count=2,
            requests_received=2**40,
            requests_handled=7,
            kdumps_on_disk=1,
            status_failed=True,
            cached=True,
            status_id="01HSTATUS",
            details="all good",
            error_code=450,
            error_str="custom check failed",
            created_at=datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),
            started_at=datetime(2024, 1, 2, 3, 4, 5, 7000, tzinfo=UTC),
            completed_at=datetime(2024, 1, 2, 3, 4, 6, 999000, tzinfo=UTC),
            scheduler_duration=0.25,
            execution_duration=1.5,
            image_pull_wait_duration=0.001,
            ctr_prep_duration=2.0,
            ctr_create_duration=0.125,
            init_start_time=3.5,
            is_network_disabled=True,
            custom_status={"disk": "ok"},
        )
        message = status_to_pb(status)
        assert message.createdAt == "2024-01-02T03:04:05.006Z"
        assert message.completedAt == "2024-01-02T03:04:06.999Z"
        assert message.executionDuration == 1_500_000_000
        assert message.imagePullWaitDuration == 1_000_000
        assert message.requestsReceived == 2**40
        back = status_from_pb(pb.RunnerStatus.FromString(message.SerializeToString()))
        assert back == status
        assert back.created_at is not None
        assert back.created_at.utcoffset() == UTC.utcoffset(None)

    def test_default_status(self) -> None:
        """A default status is an empty message, and an empty message is a default status."""
        assert status_to_pb(RunnerStatus()).SerializeToString() == b""
        assert status_from_pb(pb.RunnerStatus()) == RunnerStatus()

    def test_parse_date(self) -> None:
        """An empty or malformed date is no date; a protocol date is an aware UTC datetime."""
        assert parse_date("") is None
        assert parse_date("yesterday") is None
        assert parse_date("2024-01-02T03:04:05.006Z") == datetime(
            2024, 1, 2, 3, 4, 5, 6000, tzinfo=UTC
        )


class TestFinishedErrors:
    def test_success(self) -> None:
        """A successful CallFinished is no error, whatever its other fields say."""
        finished = pb.CallFinished(success=True, errorCode=500, errorStr="ignored")
        assert error_from_finished(finished) is None

    def test_nack_even_for_a_user_error(self) -> None:
        """Code 503 is the NACK even with errorUser set: RunnerBusyError, a NotPlacedError."""
        finished = pb.CallFinished(errorCode=503, errorStr="too busy", errorUser=True)
        error = error_from_finished(finished)
        assert isinstance(error, RunnerBusyError)
        assert isinstance(error, NotPlacedError)
        assert not isinstance(error, APIError)
        assert str(error) == "too busy"

    def test_nack_without_message(self) -> None:
        """A 503 without errorStr gets Fn's NACK message."""
        error = error_from_finished(pb.CallFinished(errorCode=503))
        assert isinstance(error, RunnerBusyError)
        assert str(error) == "Timed out - server too busy"

    def test_user_error(self) -> None:
        """A CallFinished with errorUser gives a FuncError with the code and message."""
        error = error_from_finished(
            pb.CallFinished(errorCode=502, errorStr="function failed", errorUser=True)
        )
        assert type(error) is FuncError
        assert (error.status_code, error.message) == (502, "function failed")

    def test_service_error(self) -> None:
        """Without errorUser the error is a plain APIError with the code."""
        error = error_from_finished(pb.CallFinished(errorCode=504, errorStr="Timed out"))
        assert type(error) is APIError
        assert (error.status_code, error.message) == (504, "Timed out")

    def test_empty_error_string(self) -> None:
        """An empty errorStr becomes Fn's "Unknown Error From Pure Runner", code kept (even 0)."""
        error = error_from_finished(pb.CallFinished())
        assert type(error) is APIError
        assert (error.status_code, error.message) == (0, "Unknown Error From Pure Runner")
        user = error_from_finished(pb.CallFinished(errorCode=400, errorUser=True))
        assert type(user) is FuncError
        assert (user.status_code, user.message) == (400, "Unknown Error From Pure Runner")
