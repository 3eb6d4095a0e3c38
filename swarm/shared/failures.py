"""Which failure is whose: any exception as the SwarmError every wire (gRPC, HTTP) answers, or None for a bug.

A SwarmError stays itself, a bad field (InvalidRequest) is INVALID_ARGUMENT, a full Redis
(maxmemory reached under the noeviction policy) RESOURCE_EXHAUSTED, and Redis failing
otherwise (unreachable, restarting, refusing writes) UNAVAILABLE, which clients retry:
the requests it holds come back with it. Anything else is a bug in swarm.
"""

from __future__ import annotations

import re
import traceback

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError as RedisOutOfMemoryError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.redaction import redact_url
from swarm.shared.validation import InvalidRequest

RETRY_HINT = "retry in a few seconds"
# How Redis words a write refused at maxmemory; a Lua script's error carries it inside its own text.
_REDIS_FULL = "used memory > 'maxmemory'"
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def as_swarm_error(exc: BaseException) -> SwarmError | None:
    """The SwarmError a caller gets for exc; None when exc is a bug (the caller gets INTERNAL, the log the rest)."""
    if isinstance(exc, SwarmError):
        return exc
    if isinstance(exc, InvalidRequest):
        return SwarmError(ErrorCode.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, RedisOutOfMemoryError) or (isinstance(exc, ResponseError) and _REDIS_FULL in str(exc)):
        return redis_full()
    if isinstance(exc, RedisError) or (isinstance(exc, OSError) and _raised_in_redis(exc)):
        return redis_unavailable(exc)
    return None


def redis_unavailable(exc: BaseException) -> SwarmError:
    """UNAVAILABLE saying that Redis failed and how, with any password in the detail masked."""
    detail = _URL.sub(lambda url: redact_url(url.group()), str(exc)) or type(exc).__name__
    unreachable = isinstance(exc, (RedisConnectionError, RedisTimeoutError, OSError))
    what = "Redis is unreachable" if unreachable else "Redis refused a command"
    return SwarmError(ErrorCode.UNAVAILABLE, f"{what} ({detail}); {RETRY_HINT}")


def redis_full() -> SwarmError:
    """RESOURCE_EXHAUSTED: Redis refuses writes until work finishes and frees memory, or an operator raises it."""
    return SwarmError(
        ErrorCode.RESOURCE_EXHAUSTED,
        "Redis is full (its maxmemory is reached and it evicts nothing): the swarm takes no more queued "
        f"or batch work until some finishes or an operator raises Redis's maxmemory; {RETRY_HINT}",
    )


def _raised_in_redis(exc: BaseException) -> bool:
    """Whether a socket error came from inside the redis client (not from, say, a file being served)."""
    return any(
        str(frame.f_globals.get("__name__", "")).partition(".")[0] == "redis"
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    )
