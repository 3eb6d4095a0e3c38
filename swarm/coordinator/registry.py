"""The worker registry and heartbeat liveness, kept in Redis; workers prove who they are with their join secret."""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from enum import Enum

from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.shared.codec import to_json, worker_info_from_json, worker_load_from_json
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import WorkerId, WorkerInfo, WorkerLoad, WorkerState, WorkerView

log = logging.getLogger(__name__)


class Standing(Enum):
    """What a heartbeat finds."""

    UNKNOWN = "unknown"  # not registered (forgotten, or Redis lost it): the worker must join again
    MEMBER = "member"
    DRAINING = "draining"  # it must finish its work and leave


# Each script decides and writes in one step, so a joiner and a heartbeat (or two joiners) never interleave.
# KEYS: WORKERS, WORKER_SECRETS, heartbeat key, claim key, LAST_SEEN, DRAINING.
_JOIN = """
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
redis.call('SET', KEYS[4], '1', 'PX', ARGV[5])
redis.call('HSET', KEYS[5], ARGV[1], ARGV[6])
redis.call('SREM', KEYS[6], ARGV[1])
return 1
"""
# ARGV: worker id, its secret's digest, load JSON, TTL in ms, now.
_HEARTBEAT = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 'unknown' end
local digest = redis.call('HGET', KEYS[2], ARGV[1])
if not digest then return 'unknown' end
if digest ~= ARGV[2] then return 'impostor' end
redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
redis.call('SET', KEYS[4], '1', 'PX', ARGV[4])
redis.call('HSET', KEYS[5], ARGV[1], ARGV[5])
if redis.call('SISMEMBER', KEYS[6], ARGV[1]) == 1 then return 'draining' end
return 'member'
"""
# ARGV: worker id, its secret's digest.
_LEAVE = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 'unknown' end
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 'impostor' end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3], KEYS[4])
redis.call('HDEL', KEYS[5], ARGV[1])
redis.call('SREM', KEYS[6], ARGV[1])
return 'left'
"""


def secret_digest(secret: str) -> str:
    """What Redis keeps of a worker's secret: whoever reads Redis still cannot heartbeat as the worker."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _worker_keys(worker_id: str) -> list[str]:
    return [
        keys.WORKERS,
        keys.WORKER_SECRETS,
        keys.heartbeat_key(worker_id),
        keys.worker_claim_key(worker_id),
        keys.LAST_SEEN,
        keys.DRAINING,
    ]


def _not_its_secret(worker_id: WorkerId, call: str, ttl_s: float) -> SwarmError:
    log.warning("refused a %s for worker %s: wrong or missing worker secret", call, worker_id)
    return SwarmError(
        ErrorCode.PERMISSION_DENIED,
        f"worker_secret: this {call} does not carry the secret worker {worker_id!r} got when it joined; "
        f"another worker holds this id now (a worker silent for {ttl_s:g} s loses it): "
        "restart this worker, or give each worker its own --worker-id",
    )


class WorkerRegistry:
    def __init__(self, redis: Redis, heartbeat_ttl_s: float) -> None:
        self._redis = redis
        self._ttl_s = heartbeat_ttl_s
        self._ttl_ms = int(heartbeat_ttl_s * 1000)
        self._join = redis.register_script(_JOIN)
        self._heartbeat = redis.register_script(_HEARTBEAT)
        self._leave = redis.register_script(_LEAVE)

    async def join(self, info: WorkerInfo) -> str:
        """Registers the worker and returns the secret it must send with every heartbeat and its leave.

        ALREADY_EXISTS while another worker holds the id (it heartbeated within the TTL); an id
        whose holder fell silent for the TTL is free again, and a worker joining again starts afresh.
        """
        secret = secrets.token_urlsafe(32)
        args: list[str | int | float] = [
            info.worker_id,
            secret_digest(secret),
            to_json(info),
            to_json(WorkerLoad()),
            self._ttl_ms,
            time.time(),
        ]
        if not await self._join(keys=_worker_keys(info.worker_id), args=args):
            raise SwarmError(
                ErrorCode.ALREADY_EXISTS,
                f"worker_id: {info.worker_id!r} belongs to a worker that heartbeated in the last {self._ttl_s:g} s; "
                "give this worker its own --worker-id, or stop the other one and join again "
                f"once it has been silent for {self._ttl_s:g} s",
            )
        return secret

    async def heartbeat(self, worker_id: WorkerId, secret: str, load: WorkerLoad) -> Standing:
        """Records a heartbeat; says whether the worker must join again or is draining.

        PERMISSION_DENIED when the secret is not the one this id was issued at its join.
        """
        args: list[str | int | float] = [worker_id, secret_digest(secret), to_json(load), self._ttl_ms, time.time()]
        found = str(await self._heartbeat(keys=_worker_keys(worker_id), args=args))
        if found == "impostor":
            raise _not_its_secret(worker_id, "heartbeat", self._ttl_s)
        return Standing(found)

    async def drain(self, worker_id: WorkerId) -> bool:
        """Marks a worker draining; False when no such worker is registered."""
        if not await self._redis.hexists(keys.WORKERS, worker_id):
            return False
        await self._redis.sadd(keys.DRAINING, worker_id)
        return True

    async def leave(self, worker_id: WorkerId, secret: str) -> None:
        """Deregisters the worker that proves it is worker_id (PERMISSION_DENIED otherwise); unknown ids are a no-op."""
        if str(await self._leave(keys=_worker_keys(worker_id), args=[worker_id, secret_digest(secret)])) == "impostor":
            raise _not_its_secret(worker_id, "leave", self._ttl_s)

    async def forget(self, worker_id: WorkerId) -> None:
        """Removes a worker without its secret: the coordinator's own decision (it was silent too long)."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.WORKERS, worker_id)
            pipe.hdel(keys.WORKER_SECRETS, worker_id)
            pipe.hdel(keys.LAST_SEEN, worker_id)
            pipe.delete(keys.heartbeat_key(worker_id), keys.worker_claim_key(worker_id))
            pipe.srem(keys.DRAINING, worker_id)
            await pipe.execute()

    async def mark_down(self, worker_id: WorkerId) -> None:
        """Ends a worker's liveness now (it failed a call); its next heartbeat brings it back."""
        await self._redis.delete(keys.heartbeat_key(worker_id))

    async def snapshot(self) -> list[WorkerView]:
        """Every registered worker with its last load and whether its heartbeat is alive."""
        infos = await self._redis.hgetall(keys.WORKERS)
        if not infos:
            return []
        ids = sorted(str(k) for k in infos)
        loads = await self._redis.mget([keys.heartbeat_key(i) for i in ids])
        seen = await self._redis.hmget(keys.LAST_SEEN, ids)
        draining = {str(i) for i in await self._redis.smembers(keys.DRAINING)}
        now = time.time()
        views = []
        for worker_id, load, last in zip(ids, loads, seen, strict=True):
            info = worker_info_from_json(infos[worker_id])
            views.append(
                WorkerView(
                    info=info,
                    load=worker_load_from_json(load) if load else WorkerLoad(),
                    state=worker_state(alive=load is not None, draining=worker_id in draining),
                    heartbeat_age_s=now - float(last) if last else -1.0,
                )
            )
        return views


def worker_state(*, alive: bool, draining: bool) -> WorkerState:
    """A silent worker is down even while marked draining: nothing runs on it any more."""
    if not alive:
        return WorkerState.DOWN
    return WorkerState.DRAINING if draining else WorkerState.UP
