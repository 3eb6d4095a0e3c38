"""ApiKeyInterceptor: every client-facing gRPC service of the coordinator refuses calls without an API key.

Deny by default: a service added later needs a key unless listed in OPEN_SERVICES, so a
new client API cannot be left open by mistake.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from swarm.coordinator.auth.api_keys import HOW_TO_PASS, ApiKeyCheck
from swarm.shared.auth import AUTH_HEADER
from swarm.shared.method_handlers import rebuilt_handler

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


def _refusing(handler: Any, check: ApiKeyCheck) -> Any:
    """A handler of the same kind as handler that logs the refusal and answers UNAUTHENTICATED."""

    async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
        check.log_refusal("client call", context.peer())
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"wrong or missing API key: {HOW_TO_PASS}")

    return rebuilt_handler(handler, lambda _original, _requests_stream: refuse)


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, check: ApiKeyCheck) -> None:
        self._check = check

    async def intercept_service(self, continuation: Callable[[Any], Awaitable[Any]], handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None or service_of(handler_call_details.method) in OPEN_SERVICES:
            return handler
        authorization = next(
            (value for key, value in handler_call_details.invocation_metadata or () if key == AUTH_HEADER), None
        )
        if self._check.allows_bearer(authorization if isinstance(authorization, str) else None):
            return handler
        return _refusing(handler, self._check)
