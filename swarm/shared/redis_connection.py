"""Every Redis client of the swarm, built from one --redis URL: one server, or the primary that Redis Sentinels name.

Forms: `redis://[[USER]:PASSWORD@]HOST:PORT/DB`, `rediss://...` (TLS), `unix:///path.sock?db=N`, and
`redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/SERVICE[/DB][?sentinel_password=P]`, which
lists Sentinels (port 26379 when left out) and names the primary's service; USER and PASSWORD are the
primary's. Under Sentinel, redis-py's own Sentinel client finds the primary and finds it again after
a failover; DurableWrites then holds writes that must survive one until a replica has them too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from swarm.shared.backoff import backoff_delays
from swarm.shared.redaction import redact_url, scrub

log = logging.getLogger(__name__)

SENTINEL_SCHEME = "redis+sentinel"
PLAIN_SCHEMES = ("redis", "rediss", "unix")
DEFAULT_SENTINEL_PORT = 26379
REPLICA_ACK_TIMEOUT_MS = 1000
# After a wait no replica answered (none is left after a promotion, until an operator adds one),
# writes go unconfirmed for this long instead of each paying the timeout.
NO_REPLICA_RECHECK_S = 5.0
# WAIT counts the writes of its own connection; a write to this key on the connection that waits
# comes after every write already answered on any connection, so its acknowledgement covers them.
FENCE_KEY = "swarm:replication-fence"
# Under Sentinel a primary that does not answer may be failing over: the Sentinels name another within
# their down-after time and an election (seconds in the tests, 30 s and more with Redis's defaults). A
# coordinator started meanwhile (systemd restarting it, say) waits for the new primary instead of exiting.
SENTINEL_STARTUP_PATIENCE_S = 60.0


@dataclass(frozen=True)
class SentinelTarget:
    """What a redis+sentinel:// URL names: the Sentinels to ask, the primary's service, and how to log in to it."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str = ""
    password: str = ""
    sentinel_password: str = ""


def check_redis_url(url: str) -> None:
    """Raises ValueError naming --redis when url is none of the forms this module connects to."""
    scheme = url.partition("://")[0]
    if scheme == SENTINEL_SCHEME:
        parse_sentinel_url(url)
    elif scheme not in PLAIN_SCHEMES or "://" not in url:
        raise ValueError(
            f"--redis must be a redis://, rediss://, unix:// or {SENTINEL_SCHEME}:// URL, got {redact_url(url)}"
        )


def parse_sentinel_url(url: str) -> SentinelTarget:
    """The Sentinels, service and database a redis+sentinel:// URL names; ValueError naming --redis if malformed."""
    shown = redact_url(url)
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        raise ValueError(f"--redis: not a {SENTINEL_SCHEME}:// URL: {shown}")
    credentials, _, hosts = parts.netloc.rpartition("@")
    username, _, password = credentials.partition(":")
    sentinels = tuple(_host_port(h.strip(), shown) for h in hosts.split(",") if h.strip())
    if not sentinels:
        raise ValueError(f"--redis: a {SENTINEL_SCHEME}:// URL lists at least one Sentinel HOST:PORT, got {shown}")
    path = [p for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError(f"--redis: a {SENTINEL_SCHEME}:// URL ends in /SERVICE or /SERVICE/DB, got {shown}")
    db = 0
    if len(path) == 2:
        if not path[1].isdigit():
            raise ValueError(f"--redis: the database after the service must be a number, got {shown}")
        db = int(path[1])
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = sorted(set(query) - {"sentinel_password"})
    if unknown:
        raise ValueError(f"--redis: unknown {SENTINEL_SCHEME}:// option {unknown[0]!r} in {shown}")
    return SentinelTarget(
        sentinels=sentinels,
        service=unquote(path[0]),
        db=db,
        username=unquote(username),
        password=unquote(password),
        sentinel_password=query.get("sentinel_password", [""])[0],
    )


def _host_port(text: str, shown: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":") if not text.endswith("]") else (text, "", "")
    if not colon:
        host, port = text, str(DEFAULT_SENTINEL_PORT)
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--redis: Sentinel address {text!r} is not HOST:PORT in {shown}")
    return host, int(port)


def _client_options() -> dict[str, Any]:
    return {
        "decode_responses": True,
        "socket_connect_timeout": 5,
        "socket_timeout": 10,
        "health_check_interval": 30,
        # After a Redis restart or a failover every pooled connection is dead: a command that meets
        # one reconnects (under Sentinel, to the primary it names now) and is sent again, instead of
        # failing the request it serves.
        "retry": Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
        "retry_on_error": [RedisConnectionError],
    }


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel's pool that, like the plain one, makes a burst wait for a connection instead of failing."""


async def connect_redis(url: str) -> Redis:
    """A client of the Redis the URL names (its primary, under Sentinel), checked with a PING."""
    # A blocking pool makes a burst (a thousand clients hanging up at once) wait for a
    # connection instead of failing with MaxConnectionsError.
    pool_options: dict[str, Any] = {"max_connections": 64, "timeout": 10, **_client_options()}
    if url.startswith(f"{SENTINEL_SCHEME}://"):
        target = parse_sentinel_url(url)
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(target.sentinels),
            sentinel_kwargs={
                "socket_connect_timeout": 2,
                "socket_timeout": 2,
                "password": target.sentinel_password or None,
            },
        )
        redis: Redis = sentinel.master_for(
            target.service,
            connection_pool_class=_BlockingSentinelPool,
            db=target.db,
            username=target.username or None,
            password=target.password or None,
            **pool_options,
        )
    else:
        redis = Redis.from_pool(BlockingConnectionPool.from_url(url, **pool_options))
    try:
        await _first_ping(redis, url, SENTINEL_STARTUP_PATIENCE_S if url.startswith(f"{SENTINEL_SCHEME}://") else 0.0)
    except Exception as exc:
        await close_redis(redis)
        raise ConnectionError(f"cannot reach Redis at {redact_url(url)}: {scrub(str(exc), url)}") from None
    return redis


async def _first_ping(redis: Redis, url: str, patience_s: float) -> None:
    """PINGs, trying again for up to patience_s while Redis cannot be reached; a refused login fails at once."""
    deadline = time.monotonic() + patience_s
    delays = backoff_delays(first_s=0.2, cap_s=2.0)
    warned = False
    while True:
        try:
            await redis.ping()
            return
        except AuthenticationError:
            raise
        except (RedisConnectionError, RedisTimeoutError) as exc:
            if time.monotonic() >= deadline:
                raise
            if not warned:
                warned = True
                log.warning(
                    "no Redis primary answers at %s yet (%s); waiting up to %.0f s for the Sentinels to name one",
                    redact_url(url),
                    scrub(str(exc), url),
                    patience_s,
                )
        await asyncio.sleep(min(next(delays), max(0.0, deadline - time.monotonic())))


async def close_redis(redis: Redis) -> None:
    """Closes the client, and under Sentinel the connections to the Sentinels too."""
    pool = redis.connection_pool
    await redis.aclose()
    if isinstance(pool, SentinelConnectionPool):
        await pool.sentinel_manager.aclose()


class DurableWrites:
    """Holds the caller until a replica has every write answered so far (WAIT), so a failover keeps them.

    Only under Sentinel: a single Redis has no replica to wait for, and pays nothing. When no
    replica acknowledges in time (none is left after a promotion) the write stands unconfirmed,
    with a warning, rather than refusing work a lone primary can do.
    """

    def __init__(self, redis: Redis | None, timeout_ms: int = REPLICA_ACK_TIMEOUT_MS) -> None:
        self._redis = redis
        self._timeout_ms = timeout_ms
        self._unconfirmed_until = 0.0

    @classmethod
    def for_client(cls, redis: Redis, timeout_ms: int = REPLICA_ACK_TIMEOUT_MS) -> DurableWrites:
        """Waits for a replica when the client reaches its primary through Sentinel; otherwise does nothing."""
        return cls(redis if isinstance(redis.connection_pool, SentinelConnectionPool) else None, timeout_ms)

    async def confirm(self) -> bool:
        """True once a replica holds every write answered before this call; False when none is waited for or came."""
        if self._redis is None or time.monotonic() < self._unconfirmed_until:
            return False
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.incr(FENCE_KEY)
            pipe.wait(1, self._timeout_ms)
            _, acknowledged = await pipe.execute()
        if int(acknowledged) >= 1:
            return True
        if time.monotonic() < self._unconfirmed_until:
            return False  # a wait beside this one already said so
        self._unconfirmed_until = time.monotonic() + NO_REPLICA_RECHECK_S
        log.warning(
            "no Redis replica acknowledged writes within %d ms: a failover now could lose the latest ones "
            "(checking again in %.0f s)",
            self._timeout_ms,
            NO_REPLICA_RECHECK_S,
        )
        return False


NO_REPLICAS = DurableWrites(None)
