"""The runner protocol's wire contract: what both ends of the transport share.

The client side of the transport lives in this package (:class:`~runnerpool.rpc.GrpcRunner`);
the service side (:mod:`runnerpool.runner`) implements the protocol on top of this module: the
generated messages and service base, the codec between Fn's call model and the messages, and
the corked HTTP/2 transport both ends write through (issue 16). Everything here is the
protocol Fn's Go runner and load balancer speak; changing it is a wire change.
"""

from __future__ import annotations

from ._client import split_address as split_address
from ._codec import MAX_DATA_CHUNK as MAX_DATA_CHUNK
from ._codec import ProtocolViolation as ProtocolViolation
from ._codec import finished_error_fields as finished_error_fields
from ._codec import format_date as format_date
from ._codec import nanoseconds as nanoseconds
from ._codec import status_to_pb as status_to_pb
from ._cork import CorkedServer as CorkedServer
from ._proto import runner_pb2 as pb
from ._proto.runner_grpc import RunnerProtocolBase as RunnerProtocolBase
from ._proto.runner_grpc import RunnerProtocolStub as RunnerProtocolStub

__all__ = [
    "MAX_DATA_CHUNK",
    "CorkedServer",
    "ProtocolViolation",
    "RunnerProtocolBase",
    "RunnerProtocolStub",
    "finished_error_fields",
    "format_date",
    "nanoseconds",
    "pb",
    "split_address",
    "status_to_pb",
]
