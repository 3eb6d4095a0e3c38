"""The HTTP error boundary: a handler's failure as a JSON status (OpenAI's error shape under /v1/), never a traceback.

A SwarmError answers with its own status (429, 503, ...), a bad field 400 naming it, Redis
failing 503 (clients retry it), and a bug 500 while the traceback goes to the log.
aiohttp's own HTTP exceptions (404, 405, 413) pass through as they are.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from swarm.coordinator.auth.http_auth import OPENAI_PREFIX
from swarm.coordinator.openai_http.responses import ErrorReply, invalid_request_reply, swarm_error_reply
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.failures import as_swarm_error
from swarm.shared.validation import InvalidRequest
from swarm.wire.grpc_errors import retry_after

log = logging.getLogger(__name__)


def openai_error(exc: Exception, what: str) -> ErrorReply:
    """exc in OpenAI's error shape with its HTTP status; outages and bugs are logged as what failed."""
    if isinstance(exc, InvalidRequest):
        return invalid_request_reply(exc)
    error = as_swarm_error(exc)
    if error is None:
        log.error("%s failed", what, exc_info=exc)
        error = SwarmError(ErrorCode.INTERNAL, f"internal error ({type(exc).__name__}); the server log has it")
    elif error is not exc:
        log.warning("%s: %s", what, error.message)
    return swarm_error_reply(error)


@web.middleware
async def http_error_boundary(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        reply = openai_error(exc, f"{request.method} {request.path}")
        error = as_swarm_error(exc)
        headers = {"Retry-After": retry_after(error)} if reply.status == 429 and error is not None else None
        if request.path.startswith(OPENAI_PREFIX):
            return web.json_response(reply.body, status=reply.status, headers=headers)
        return web.json_response({"error": reply.body["error"]["message"]}, status=reply.status, headers=headers)
