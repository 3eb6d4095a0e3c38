"""The gRPC error boundary over real loopback gRPC: every failure ends the call with a precise status, never UNKNOWN."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from redis.asyncio import Redis

from swarm.launch.local_swarm import free_port
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.serving import start_listening
from swarm.shared.validation import InvalidRequest
from swarm.wire import swarm_pb2 as pb
from swarm.wire import swarm_pb2_grpc as pb_grpc
from swarm.wire.grpc_errors import RETRY_AFTER_S, call_status, error_boundary

pytestmark = pytest.mark.timeout(60)

PASSWORD = "hunter2-not-for-clients"


async def unreachable_redis() -> None:
    """A real redis client's failure: the port has no server behind it."""
    client = Redis.from_url(f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    try:
        await client.ping()
    finally:
        await client.aclose()


class FailingServicer(pb_grpc.InferenceServicer):  # type: ignore[misc]
    """Generate streams one piece, then fails with `failure`; ListModels fails with it at once."""

    def __init__(self, failure: Callable[[], Awaitable[None]]) -> None:
        self.failure = failure
        self.stream_closed = asyncio.Event()

    @error_boundary
    async def Generate(self, request: pb.GenerateRequest, context: Any) -> AsyncIterator[pb.GenerateResponse]:
        try:
            yield pb.GenerateResponse(request_id="r", piece=pb.TextPiece(text="a"))
            await self.failure()
        finally:
            self.stream_closed.set()

    @error_boundary
    async def ListModels(self, request: pb.ListModelsRequest, context: Any) -> pb.ListModelsResponse:
        await self.failure()
        return pb.ListModelsResponse()


def raising(exc: BaseException) -> Callable[[], Awaitable[None]]:
    async def fail() -> None:
        raise exc

    return fail


async def forever() -> None:
    await asyncio.Event().wait()


async def with_server(
    failure: Callable[[], Awaitable[None]], calls: Callable[[pb_grpc.InferenceStub, FailingServicer], Awaitable[None]]
) -> None:
    server = grpc.aio.server()
    servicer = FailingServicer(failure)
    pb_grpc.add_InferenceServicer_to_server(servicer, server)
    port = await start_listening(server, f"127.0.0.1:{free_port()}")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            await calls(pb_grpc.InferenceStub(channel), servicer)
    finally:
        await server.stop(None)


async def both_calls(stub: pb_grpc.InferenceStub) -> list[tuple[int, grpc.StatusCode, str, dict[str, str]]]:
    """(messages before the error, code, details, trailing metadata) of Generate, then of ListModels."""
    outcomes = []
    for streaming in (True, False):
        received = 0
        call = stub.Generate(pb.GenerateRequest(prompt="x")) if streaming else stub.ListModels(pb.ListModelsRequest())
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            if streaming:
                async for _ in call:
                    received += 1
            else:
                await call
        trailers = {k: v for k, v in (await call.trailing_metadata() or ())}
        outcomes.append((received, caught.value.code(), caught.value.details() or "", trailers))
    return outcomes


def outcomes_of(failure: Callable[[], Awaitable[None]]) -> list[tuple[int, grpc.StatusCode, str, dict[str, str]]]:
    found: list[tuple[int, grpc.StatusCode, str, dict[str, str]]] = []

    async def calls(stub: pb_grpc.InferenceStub, _servicer: FailingServicer) -> None:
        found.extend(await both_calls(stub))

    asyncio.run(with_server(failure, calls))
    return found


def test_a_swarm_error_keeps_its_code_and_a_full_swarm_says_when_to_retry() -> None:
    outcomes = outcomes_of(raising(SwarmError(ErrorCode.RESOURCE_EXHAUSTED, "the swarm is full")))
    assert outcomes == [
        (1, grpc.StatusCode.RESOURCE_EXHAUSTED, "the swarm is full", {"retry-after": "2"}),
        (0, grpc.StatusCode.RESOURCE_EXHAUSTED, "the swarm is full", {"retry-after": "2"}),
    ]
    for _, code, details, trailers in outcomes_of(raising(SwarmError(ErrorCode.NOT_FOUND, "no model 'x'"))):
        assert (code, details, trailers) == (grpc.StatusCode.NOT_FOUND, "no model 'x'", {})


def test_a_bad_field_is_invalid_argument_naming_it() -> None:
    for _, code, details, _ in outcomes_of(raising(InvalidRequest("request_id", "is reserved"))):
        assert (code, details) == (grpc.StatusCode.INVALID_ARGUMENT, "request_id: is reserved")


def test_redis_unreachable_is_unavailable_naming_redis_without_its_password() -> None:
    for _, code, details, _ in outcomes_of(unreachable_redis):
        assert code is grpc.StatusCode.UNAVAILABLE, details
        assert details.startswith("Redis is unreachable (") and details.endswith("retry in a few seconds"), details
        assert PASSWORD not in details


def test_a_bug_is_internal_with_the_traceback_in_the_log_only(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="swarm.wire.grpc_errors"):
        outcomes = outcomes_of(raising(KeyError("secret internals")))
    for _, code, details, _ in outcomes:
        assert code is grpc.StatusCode.INTERNAL
        assert details == "internal error (KeyError); the server log has it"
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[0] is KeyError]
    assert [r.getMessage() for r in logged] == ["FailingServicer.Generate failed", "FailingServicer.ListModels failed"]


def test_closing_a_streaming_method_closes_the_wrapped_stream_at_once() -> None:
    """grpc closes a stream whose client hung up; the method's cleanup (freeing a slot) must run then, not at GC."""

    async def close_after_one() -> bool:
        servicer = FailingServicer(forever)
        replies = servicer.Generate(pb.GenerateRequest(prompt="x"), None)
        await anext(replies)
        await replies.aclose()  # type: ignore[attr-defined]
        return servicer.stream_closed.is_set()

    assert asyncio.run(close_after_one())


def test_status_of_a_redis_error_masks_any_url_password_in_its_text() -> None:
    from redis.exceptions import ResponseError

    status = call_status(ResponseError(f"cannot reach redis://:{PASSWORD}@10.0.0.1:6379/0"))
    assert status.code is grpc.StatusCode.UNAVAILABLE
    assert PASSWORD not in status.details and "redis://:***@10.0.0.1:6379/0" in status.details


def test_an_os_error_outside_redis_is_a_bug_not_an_outage() -> None:
    try:
        open("/nonexistent/stage.gguf", "rb")  # noqa: SIM115
    except OSError as exc:
        assert call_status(exc).code is grpc.StatusCode.INTERNAL


def test_a_full_redis_is_resource_exhausted_saying_so_also_from_inside_a_script() -> None:
    from redis.exceptions import OutOfMemoryError, ResponseError

    for exc in (
        OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
        ResponseError("Error running script: OOM command not allowed when used memory > 'maxmemory'."),
    ):
        status = call_status(exc)
        assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
        assert status.details.startswith("Redis is full") and "maxmemory" in status.details
        assert status.trailers == (("retry-after", RETRY_AFTER_S),)
