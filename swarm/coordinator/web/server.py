"""The coordinator's HTTP app: health, status and models as JSON, the OpenAI API, metrics, the dashboard, key admin."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict

from aiohttp import web
from aiohttp.typedefs import Middleware

from swarm.coordinator.dashboard.batch_jobs import BatchJobSource, no_batch_jobs
from swarm.coordinator.dashboard.routes import add_dashboard_routes
from swarm.coordinator.metrics import add_metrics_route
from swarm.coordinator.openai_http.routes import add_openai_routes
from swarm.coordinator.service import InferenceService
from swarm.coordinator.tenancy.admin_routes import add_admin_routes
from swarm.coordinator.tenancy.key_admin import KeyAdmin
from swarm.coordinator.web.errors import http_error_boundary
from swarm.shared.failures import as_swarm_error
from swarm.wire.json_views import status_to_json

# /healthz answers within this even when Redis hangs: a probe that times out tells nobody why.
REDIS_HEALTH_TIMEOUT_S = 2.0


def build_http_app(
    service: InferenceService,
    middlewares: Sequence[Middleware] = (),
    max_body_bytes: int = 1024**2,
    batch_jobs: BatchJobSource = no_batch_jobs,
    *,
    redis_ping: Callable[[], Awaitable[object]],
    key_admin: KeyAdmin | None = None,
) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        """ok only while Redis answers: without it the coordinator can take no request."""
        try:
            async with asyncio.timeout(REDIS_HEALTH_TIMEOUT_S):
                await redis_ping()
        except TimeoutError:
            reason = f"Redis did not answer within {REDIS_HEALTH_TIMEOUT_S:g} s"
            return web.json_response({"status": "unavailable", "reason": reason}, status=503)
        except Exception as exc:
            error = as_swarm_error(exc)
            if error is None:
                raise
            return web.json_response({"status": "unavailable", "reason": error.message}, status=503)
        return web.json_response({"status": "ok"})

    async def status(_request: web.Request) -> web.Response:
        return web.json_response(status_to_json(await service.status()))

    async def models(_request: web.Request) -> web.Response:
        return web.json_response({"models": [asdict(m) for m in await service.list_models()]})

    # Reading a body past max_body_bytes raises 413 (HTTPRequestEntityTooLarge) instead of buffering it.
    app = web.Application(middlewares=[http_error_boundary, *middlewares], client_max_size=max_body_bytes)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/status", status)
    app.router.add_get("/models", models)
    add_openai_routes(app, service)
    add_metrics_route(app, service.metrics, service.status, service.usage)
    add_dashboard_routes(app, service.status, lambda: service.metrics.recent, batch_jobs, service.usage)
    if key_admin is not None:
        add_admin_routes(app, key_admin)
    return app
