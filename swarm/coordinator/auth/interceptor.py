"""ApiKeyInterceptor: every client-facing gRPC service of the coordinator refuses calls without a valid API key.

Deny by default: a service added later needs a key unless listed in OPEN_SERVICES, so a
new client API cannot be left open by mistake. A call let in runs with its caller's Access
(tenancy.caller.current_access), resolved here once.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from swarm.coordinator.auth.api_keys import bearer_key
from swarm.coordinator.tenancy.caller import Access, set_current_access
from swarm.coordinator.tenancy.resolver import CallerResolver
from swarm.shared.auth import AUTH_HEADER
from swarm.shared.errors import SwarmError
from swarm.shared.method_handlers import Behavior, rebuilt_handler
from swarm.wire.grpc_errors import call_status

log = logging.getLogger(__name__)

OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
        # Worker-facing: they require the join token instead (TokenGate).
        "swarm.v1.Registry",
        "swarm.v1.ModelFiles",
    }
)


def service_of(method: str) -> str:
    """'swarm.v1.Inference' of '/swarm.v1.Inference/Generate'."""
    return method.lstrip("/").split("/", 1)[0]


def _refusing(handler: Any, resolver: CallerResolver, failure: Exception) -> Any:
    """A handler of the same kind as handler that logs the refusal and ends the call with failure's status."""
    status = call_status(failure)

    async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
        if isinstance(failure, SwarmError):
            resolver.static.log_refusal("client call", context.peer())
        else:
            log.warning("could not check a client call's API key: %s", status.details, exc_info=failure)
        await context.abort(status.code, status.details, trailing_metadata=status.trailers)

    return rebuilt_handler(handler, lambda _original, _requests_stream: refuse)


def _with_access(original: Behavior, access: Access) -> Behavior:
    """original, run with access as the call's current access (grpc tells the kinds apart by function type)."""
    if inspect.isasyncgenfunction(original):

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            set_current_access(access)
            async for reply in original(request, context):
                yield reply

        return streaming

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        set_current_access(access)
        return await original(request, context)

    return unary


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, resolver: CallerResolver) -> None:
        self._resolver = resolver

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or service_of(handler_call_details.method) in OPEN_SERVICES:
            return handler
        authorization = next(
            (value for key, value in handler_call_details.invocation_metadata or () if key == AUTH_HEADER), None
        )
        try:
            access = await self._resolver.resolve(bearer_key(authorization if isinstance(authorization, str) else None))
        except Exception as exc:  # refused, or Redis failing (UNAVAILABLE: the client retries)
            return _refusing(handler, self._resolver, exc)
        return rebuilt_handler(handler, lambda original, _requests_stream: _with_access(original, access))
