"""The gRPC error boundary: every servicer method ends a failed call here, never with UNKNOWN and a traceback.

`@error_boundary` wraps a servicer method (unary or streaming, either way): a SwarmError
ends the call with its own code (RESOURCE_EXHAUSTED with a `retry-after` hint), a bad
field with INVALID_ARGUMENT, Redis failing with UNAVAILABLE (clients retry it), and
anything else with INTERNAL while the traceback goes to the log.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import math
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import grpc

from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.failures import as_swarm_error
from swarm.shared.validation import InvalidRequest

log = logging.getLogger(__name__)

RETRY_AFTER_S = "2"  # the hint a refused (full) request gets in its trailing metadata

_Servicer = TypeVar("_Servicer")
_In = TypeVar("_In")
_Out = TypeVar("_Out")


@dataclass(frozen=True)
class CallStatus:
    """How a failed call ends: its status code, details and trailing metadata."""

    code: grpc.StatusCode
    details: str
    trailers: tuple[tuple[str, str], ...] = ()


def retry_after(error: SwarmError) -> str:
    """The `retry-after` hint of a refusal, in whole seconds: the error's own, else RETRY_AFTER_S."""
    return RETRY_AFTER_S if error.retry_after_s is None else str(max(1, math.ceil(error.retry_after_s)))


def call_status(exc: BaseException) -> CallStatus:
    """The status a call that raised exc ends with; a bug is INTERNAL, naming only the exception's type."""
    error = as_swarm_error(exc)
    if error is None:
        return CallStatus(grpc.StatusCode.INTERNAL, f"internal error ({type(exc).__name__}); the server log has it")
    retry = (("retry-after", retry_after(error)),) if error.code is ErrorCode.RESOURCE_EXHAUSTED else ()
    return CallStatus(grpc.StatusCode[error.code.name], error.message, retry)


async def abort_call(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    """Ends the call with exc's status (see call_status), logging outages and bugs; raises grpc's AbortError."""
    status = call_status(exc)
    if not isinstance(exc, (SwarmError, InvalidRequest)):  # a bug or Redis failing: nothing the caller did
        if status.code is grpc.StatusCode.INTERNAL:
            log.error("%s failed", method, exc_info=exc)
        else:
            log.warning("%s: %s", method, status.details)
    await context.abort(status.code, status.details, trailing_metadata=status.trailers)


@overload
def error_boundary(
    method: Callable[[_Servicer, _In, Any], AsyncIterator[_Out]],
) -> Callable[[_Servicer, _In, Any], AsyncIterator[_Out]]: ...


@overload
def error_boundary(
    method: Callable[[_Servicer, _In, Any], Coroutine[Any, Any, _Out]],
) -> Callable[[_Servicer, _In, Any], Coroutine[Any, Any, _Out]]: ...


def error_boundary(method: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a servicer method so that whatever it raises ends the call with a precise status."""
    name = method.__qualname__
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def streaming(self: object, request: object, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            try:
                # aclosing: a client hanging up closes the method's stream now, running its cleanup.
                async with contextlib.aclosing(method(self, request, context)) as replies:
                    async for reply in replies:
                        yield reply
            except grpc.aio.AbortError:
                raise  # the method ended the call itself
            except Exception as exc:
                await abort_call(context, exc, name)

        return streaming

    @functools.wraps(method)
    async def unary(self: object, request: object, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await method(self, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await abort_call(context, exc, name)

    return unary
