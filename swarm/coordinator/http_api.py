"""The coordinator's HTTP side: health and a JSON view of the swarm (the dashboard and OpenAI API come later)."""

from __future__ import annotations

from dataclasses import asdict

from aiohttp import web

from swarm.coordinator.service import InferenceService


def build_http_app(service: InferenceService) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def status(_request: web.Request) -> web.Response:
        snapshot = await service.status()
        return web.json_response(
            {
                "default_model": snapshot.default_model,
                "queue_depth": snapshot.queue_depth,
                "workers": [
                    {
                        **asdict(v.info),
                        **asdict(v.load),
                        "state": "up" if v.up else "down",
                        "last_heartbeat_age_s": round(v.heartbeat_age_s, 3),
                    }
                    for v in snapshot.workers
                ],
            }
        )

    async def models(_request: web.Request) -> web.Response:
        return web.json_response({"models": [asdict(m) for m in await service.list_models()]})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/status", status)
    app.router.add_get("/models", models)
    return app
