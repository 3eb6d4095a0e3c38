"""MalformedRequestInterceptor: bytes that do not decode as the method's message get INVALID_ARGUMENT.

Left alone, grpc answers an undecodable request with UNKNOWN and the Python exception's
text. Here the deserializer hands the handler a marker instead, and the handler answers
INVALID_ARGUMENT naming the message type before any servicer code sees the request.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from swarm.shared.method_handlers import rebuilt_handler


@dataclass(frozen=True)
class Undecodable:
    """Stands in for a request that failed to decode."""

    message: str


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def decode(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as exc:
            return Undecodable(f"the request is not a valid protobuf message: {exc}")

    return decode


async def _refuse(context: grpc.aio.ServicerContext, request: Undecodable) -> None:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)


async def _checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, Undecodable):
            await _refuse(context, request)
        yield request


def _checking(behavior: Callable[..., Any], requests_stream: bool) -> Callable[..., Any]:
    """behavior, refusing an Undecodable request (or one in the stream of requests) first."""
    if requests_stream:
        if inspect.isasyncgenfunction(behavior):

            async def stream_to_stream(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
                async for reply in behavior(_checked(requests, context), context):
                    yield reply

            return stream_to_stream

        async def stream_to_one(requests: AsyncIterator[Any], context: Any) -> Any:
            return await behavior(_checked(requests, context), context)

        return stream_to_one

    if inspect.isasyncgenfunction(behavior):

        async def one_to_stream(request: Any, context: Any) -> AsyncIterator[Any]:
            if isinstance(request, Undecodable):
                await _refuse(context, request)
            async for reply in behavior(request, context):
                yield reply

        return one_to_stream

    async def one_to_one(request: Any, context: Any) -> Any:
        if isinstance(request, Undecodable):
            await _refuse(context, request)
        return await behavior(request, context)

    return one_to_one


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return rebuilt_handler(handler, _checking, _lenient(handler.request_deserializer))
