"""MalformedRequestInterceptor over real gRPC: undecodable bytes get INVALID_ARGUMENT on all four kinds of method."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from swarm.launch.local_swarm import free_port
from swarm.shared.malformed_requests import MalformedRequestInterceptor
from swarm.shared.serving import start_listening
from swarm.wire import swarm_pb2 as pb

pytestmark = pytest.mark.timeout(30)

GOOD = pb.GenerateRequest(prompt="hi").SerializeToString()
CORRUPT = b"\xff\xff\xff"


async def unary_unary(request: pb.GenerateRequest, _context: Any) -> pb.GenerateResponse:
    return pb.GenerateResponse(request_id=request.prompt)


async def unary_stream(request: pb.GenerateRequest, _context: Any) -> AsyncIterator[pb.GenerateResponse]:
    yield pb.GenerateResponse(request_id=request.prompt)


async def stream_unary(requests: AsyncIterator[pb.GenerateRequest], _context: Any) -> pb.GenerateResponse:
    return pb.GenerateResponse(request_id="".join([r.prompt async for r in requests]))


async def stream_stream(
    requests: AsyncIterator[pb.GenerateRequest], _context: Any
) -> AsyncIterator[pb.GenerateResponse]:
    async for request in requests:
        yield pb.GenerateResponse(request_id=request.prompt)


def handlers() -> Any:
    codecs = {
        "request_deserializer": pb.GenerateRequest.FromString,
        "response_serializer": pb.GenerateResponse.SerializeToString,
    }
    return grpc.method_handlers_generic_handler(
        "test.Echo",
        {
            "UnaryUnary": grpc.unary_unary_rpc_method_handler(unary_unary, **codecs),
            "UnaryStream": grpc.unary_stream_rpc_method_handler(unary_stream, **codecs),
            "StreamUnary": grpc.stream_unary_rpc_method_handler(stream_unary, **codecs),
            "StreamStream": grpc.stream_stream_rpc_method_handler(stream_stream, **codecs),
        },
    )


async def call(channel: grpc.aio.Channel, method: str, payload: bytes) -> tuple[grpc.StatusCode, list[bytes]]:
    path = f"/test.Echo/{method}"
    try:
        if method == "UnaryUnary":
            replies = [await channel.unary_unary(path)(payload)]
        elif method == "UnaryStream":
            replies = [r async for r in channel.unary_stream(path)(payload)]
        elif method == "StreamUnary":
            replies = [await channel.stream_unary(path)(iter([GOOD, payload]))]
        else:
            replies = [r async for r in channel.stream_stream(path)(iter([GOOD, payload]))]
    except grpc.aio.AioRpcError as error:
        assert "not a valid protobuf message" in (error.details() or "")
        return error.code(), []
    return grpc.StatusCode.OK, replies


async def serve_and_call(method: str) -> None:
    server = grpc.aio.server(interceptors=[MalformedRequestInterceptor()])
    server.add_generic_rpc_handlers((handlers(),))
    port = await start_listening(server, f"127.0.0.1:{free_port()}")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            code, replies = await call(channel, method, GOOD)
            assert code == grpc.StatusCode.OK and replies
            assert (await call(channel, method, CORRUPT))[0] == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        await server.stop(None)


@pytest.mark.parametrize("method", ["UnaryUnary", "UnaryStream", "StreamUnary", "StreamStream"])
def test_undecodable_requests_get_invalid_argument_and_good_ones_pass(method: str) -> None:
    asyncio.run(serve_and_call(method))
