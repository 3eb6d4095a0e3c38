"""HTTP key management: GET/POST /admin/keys and DELETE /admin/keys/{name}, the admin API's JSON twin.

The API key middleware lets only admin keys reach these routes (auth.http_auth.ADMIN_ROUTES);
KeyAdmin checks again, so neither layer alone guards them.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from swarm.coordinator.auth.http_auth import caller_access
from swarm.coordinator.tenancy.key_admin import KeyAdmin
from swarm.coordinator.tenancy.key_record import KeyRecord, KeySettings, priority_name
from swarm.shared.errors import ErrorCode, SwarmError

_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "models": list,
    "expires": str,
    "tokens_per_minute": int,
    "requests_per_minute": int,
    "max_streams": int,
    "priority": (str, int),
    "weight": (int, float),
    "admin": bool,
}


def key_json(record: KeyRecord) -> dict[str, Any]:
    return {
        "name": record.name,
        "models": list(record.models),
        "expires_ms": record.expires_ms,
        "tokens_per_minute": record.tokens_per_minute,
        "requests_per_minute": record.requests_per_minute,
        "max_streams": record.max_streams,
        "priority": priority_name(record.priority),
        "weight": record.weight,
        "admin": record.admin,
        "revoked": record.revoked,
        "created_ms": record.created_ms,
    }


def settings_from_json(body: object) -> KeySettings:
    """KeySettings of a JSON object; INVALID_ARGUMENT naming an unknown or mistyped field."""
    if not isinstance(body, dict):
        raise SwarmError(ErrorCode.INVALID_ARGUMENT, "body: must be a JSON object")
    for name, value in body.items():
        expected = _FIELD_TYPES.get(name)
        if expected is None:
            raise SwarmError(ErrorCode.INVALID_ARGUMENT, f"{name}: unknown field (known: {', '.join(_FIELD_TYPES)})")
        wrong_bool = isinstance(value, bool) and expected is not bool
        if wrong_bool or not isinstance(value, expected):
            raise SwarmError(ErrorCode.INVALID_ARGUMENT, f"{name}: {value!r} has the wrong type")
    models = body.get("models", [])
    if not all(isinstance(m, str) for m in models):
        raise SwarmError(ErrorCode.INVALID_ARGUMENT, "models: must be a list of model names")
    return KeySettings(
        name=body.get("name", ""),
        models=tuple(models),
        expires=body.get("expires", ""),
        tokens_per_minute=body.get("tokens_per_minute", 0),
        requests_per_minute=body.get("requests_per_minute", 0),
        max_streams=body.get("max_streams", 0),
        priority=str(body.get("priority", "interactive")),
        weight=float(body.get("weight", 1.0)),
        admin=body.get("admin", False),
    )


def add_admin_routes(app: web.Application, admin: KeyAdmin) -> None:
    async def list_keys(request: web.Request) -> web.Response:
        return web.json_response({"keys": [key_json(r) for r in await admin.list(caller_access(request))]})

    async def create_key(request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except json.JSONDecodeError as exc:
            raise SwarmError(ErrorCode.INVALID_ARGUMENT, f"body: not JSON ({exc})") from None
        record, secret = await admin.create(caller_access(request), settings_from_json(body))
        return web.json_response({"key": key_json(record), "secret": secret}, status=201)

    async def revoke_key(request: web.Request) -> web.Response:
        record = await admin.revoke(caller_access(request), request.match_info["name"])
        return web.json_response({"key": key_json(record)})

    app.router.add_get("/admin/keys", list_keys)
    app.router.add_post("/admin/keys", create_key)
    app.router.add_delete("/admin/keys/{name}", revoke_key)
