"""The HTTP error boundary over a real aiohttp server: each failure is a JSON status, OpenAI's shape under /v1/."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from swarm.coordinator.web.errors import http_error_boundary
from swarm.launch.local_swarm import free_port
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.validation import InvalidRequest

pytestmark = pytest.mark.timeout(30)


async def unreachable_redis() -> None:
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def full() -> None:
    raise SwarmError(ErrorCode.RESOURCE_EXHAUSTED, "the swarm is full")


async def bad_field() -> None:
    raise InvalidRequest("max_tokens", "must be at least 1")


async def bug() -> None:
    raise KeyError("secret internals")


async def missing() -> None:
    raise web.HTTPNotFound()


FAILURES = {"redis": unreachable_redis, "full": full, "bad": bad_field, "bug": bug, "missing": missing}


async def answers(path: str) -> tuple[int, Any]:
    async def handler(request: web.Request) -> web.Response:
        await FAILURES[request.match_info["failure"]]()
        return web.json_response({})

    app = web.Application(middlewares=[http_error_boundary])
    app.router.add_get("/v1/{failure}", handler)
    app.router.add_get("/plain/{failure}", handler)
    async with (
        TestServer(app, host="127.0.0.1") as server,
        ClientSession() as session,
        session.get(server.make_url(path)) as response,
    ):
        body = await response.json() if response.content_type == "application/json" else await response.text()
        return response.status, body


def answer(path: str) -> tuple[int, Any]:
    return asyncio.run(answers(path))


def test_redis_unreachable_is_503_naming_redis_in_openais_shape_and_plain_elsewhere() -> None:
    status, body = answer("/v1/redis")
    assert status == 503 and body["error"]["type"] == "server_error", body
    assert body["error"]["message"].startswith("Redis is unreachable (") and "retry" in body["error"]["message"]
    status, body = answer("/plain/redis")
    assert status == 503 and body["error"].startswith("Redis is unreachable ("), body


def test_swarm_errors_and_bad_fields_keep_their_status_and_name_the_field() -> None:
    assert answer("/v1/full") == (
        429,
        {
            "error": {
                "message": "the swarm is full",
                "type": "rate_limit_error",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        },
    )
    status, body = answer("/v1/bad")
    assert (status, body["error"]["param"]) == (400, "max_tokens")
    assert answer("/plain/bad") == (400, {"error": "max_tokens: must be at least 1"})


def test_a_bug_is_500_without_its_details_which_go_to_the_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="swarm.coordinator.web.errors"):
        status, body = answer("/v1/bug")
    assert status == 500 and body["error"]["message"] == "internal error (KeyError); the server log has it"
    assert any(r.exc_info and r.exc_info[0] is KeyError for r in caplog.records)


def test_aiohttps_own_http_errors_pass_through() -> None:
    assert answer("/v1/missing")[0] == 404
