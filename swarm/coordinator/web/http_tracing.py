"""A SERVER span per OpenAI-compatible HTTP request, child of the caller's traceparent header, while tracing is on."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from swarm.shared import tracing

TRACED_PREFIX = "/v1/"  # the generation API; the dashboard's and health checks' polling is not worth a trace


def http_spans() -> list[Middleware]:
    """[the middleware] while tracing is on, else nothing."""
    if not tracing.enabled():
        return []

    @web.middleware
    async def traced(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(TRACED_PREFIX):
            return await handler(request)
        parent = tracing.metadata_context(request.headers)
        with tracing.span(f"coordinator.HTTP {request.method} {request.path}", parent, tracing.Kind.SERVER):
            return await handler(request)

    return [traced]
