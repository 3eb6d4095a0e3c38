"""The HTTP side's API key middleware: `Authorization: Bearer KEY` or the `swarm_api_key` cookie, except on open paths.

The health check, the dashboard page and its static assets stay open (the page itself
holds no data); everything else, the OpenAI API included, needs a key when keys are set.
A request let in carries its caller's Access (caller_access).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from swarm.coordinator.auth.api_keys import HOW_TO_PASS, bearer_key
from swarm.coordinator.tenancy.caller import OPEN_ACCESS, Access, Caller
from swarm.coordinator.tenancy.resolver import CallerResolver
from swarm.shared.errors import SwarmError

COOKIE = "swarm_api_key"
CALLER_KEY = "swarm.caller_key"  # where the middleware leaves the key it let a request in with
CALLER_ACCESS = "swarm.caller_access"  # and the access that key grants
# Routes (their resources' canonical paths), not URL prefixes: the decision follows what the
# router matched, so no spelling of a path can reach a guarded handler through an open prefix.
OPEN_ROUTES = frozenset({"/healthz", "/", "/static"})
OPENAI_PREFIX = "/v1/"
# Routes only an admin key may use: they show every worker, every key's traffic, or manage keys.
ADMIN_ROUTES = frozenset({"/status", "/metrics", "/admin/keys", "/admin/keys/{name}"})
# What a handler on an open route sees when keys are required: nobody, allowed nothing.
_NOBODY = Access(Caller(name="", owner="", admin=False, priority=0, weight=1.0))


def _route(request: web.Request) -> str | None:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


def is_open(request: web.Request) -> bool:
    return _route(request) in OPEN_ROUTES


def refusal(path: str, why: str = "") -> web.Response:
    """401 in the caller's dialect: OpenAI's error shape under /v1/, a plain JSON error elsewhere."""
    message = why or f"wrong or missing API key: {HOW_TO_PASS}, or a '{COOKIE}' cookie"
    headers = {"WWW-Authenticate": "Bearer"}
    if path.startswith(OPENAI_PREFIX) or path == OPENAI_PREFIX.rstrip("/"):
        body = {"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}}
        return web.json_response(body, status=401, headers=headers)
    return web.json_response({"error": message}, status=401, headers=headers)


def caller_key(request: web.Request) -> str:
    """The API key the request was let in with ("" on open routes or without keys): its requests are that key's."""
    return str(request.get(CALLER_KEY, ""))


def caller_access(request: web.Request) -> Access:
    """The access the request was let in with."""
    access = request.get(CALLER_ACCESS, _NOBODY)
    return access if isinstance(access, Access) else _NOBODY


def api_key_middleware(resolver: CallerResolver) -> Middleware:
    @web.middleware
    async def require_api_key(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not resolver.required:
            request[CALLER_ACCESS] = OPEN_ACCESS
            return await handler(request)
        if is_open(request):
            return await handler(request)
        refused: SwarmError | None = None
        for key in (bearer_key(request.headers.get("Authorization")), request.cookies.get(COOKIE)):
            if not key:
                continue
            try:
                access = await resolver.resolve(key)
            except SwarmError as exc:
                refused = exc
                continue
            if not access.caller.admin and _route(request) in ADMIN_ROUTES:
                message = f"{request.path} needs an admin key; API key {access.caller.name!r} is not one"
                return web.json_response({"error": message}, status=403)
            request[CALLER_KEY] = key
            request[CALLER_ACCESS] = access
            return await handler(request)
        resolver.static.log_refusal("HTTP request", request.remote)
        return refusal(request.path, refused.message if refused else "")

    return require_api_key
