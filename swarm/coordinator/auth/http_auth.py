"""The HTTP side's API key middleware: `Authorization: Bearer KEY` or the `swarm_api_key` cookie, except on open paths.

The health check, the dashboard page and its static assets stay open (the page itself
holds no data); everything else, the OpenAI API included, needs a key when keys are set.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from swarm.coordinator.auth.api_keys import HOW_TO_PASS, ApiKeyCheck, bearer_key

COOKIE = "swarm_api_key"
CALLER_KEY = "swarm.caller_key"  # where the middleware leaves the key it let a request in with
# Routes (their resources' canonical paths), not URL prefixes: the decision follows what the
# router matched, so no spelling of a path can reach a guarded handler through an open prefix.
OPEN_ROUTES = frozenset({"/healthz", "/", "/static"})
OPENAI_PREFIX = "/v1/"


def is_open(request: web.Request) -> bool:
    resource = request.match_info.route.resource
    return resource is not None and resource.canonical in OPEN_ROUTES


def refusal(path: str) -> web.Response:
    """401 in the caller's dialect: OpenAI's error shape under /v1/, a plain JSON error elsewhere."""
    message = f"wrong or missing API key: {HOW_TO_PASS}, or a '{COOKIE}' cookie"
    headers = {"WWW-Authenticate": "Bearer"}
    if path.startswith(OPENAI_PREFIX) or path == OPENAI_PREFIX.rstrip("/"):
        body = {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}
        return web.json_response(body, status=401, headers=headers)
    return web.json_response({"error": message}, status=401, headers=headers)


def caller_key(request: web.Request) -> str:
    """The API key the request was let in with ("" on open routes or without keys): its requests are that key's."""
    return str(request.get(CALLER_KEY, ""))


def api_key_middleware(check: ApiKeyCheck) -> Middleware:
    @web.middleware
    async def require_api_key(request: web.Request, handler: Handler) -> web.StreamResponse:
        if is_open(request) or not check.required:
            return await handler(request)
        for key in (bearer_key(request.headers.get("Authorization")), request.cookies.get(COOKIE)):
            if key and check.allows(key):
                request[CALLER_KEY] = key
                return await handler(request)
        check.log_refusal("HTTP request", request.remote)
        return refusal(request.path)

    return require_api_key
