"""The worker registry and heartbeat liveness, kept in Redis."""

from __future__ import annotations

import time
from enum import Enum

from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.shared.codec import to_json, worker_info_from_json, worker_load_from_json
from swarm.shared.types import WorkerId, WorkerInfo, WorkerLoad, WorkerState, WorkerView


class Standing(Enum):
    """What a heartbeat finds."""

    UNKNOWN = "unknown"  # not registered (forgotten, or Redis lost it): the worker must join again
    MEMBER = "member"
    DRAINING = "draining"  # it must finish its work and leave


class WorkerRegistry:
    def __init__(self, redis: Redis, heartbeat_ttl_s: float) -> None:
        self._redis = redis
        self._ttl_ms = int(heartbeat_ttl_s * 1000)

    async def join(self, info: WorkerInfo) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.WORKERS, info.worker_id, to_json(info))
            pipe.set(keys.heartbeat_key(info.worker_id), to_json(WorkerLoad()), px=self._ttl_ms)
            pipe.hset(keys.LAST_SEEN, info.worker_id, time.time())
            pipe.srem(keys.DRAINING, info.worker_id)  # a worker that joins (again) starts afresh
            await pipe.execute()

    async def heartbeat(self, worker_id: WorkerId, load: WorkerLoad) -> Standing:
        """Records a heartbeat; says whether the worker must join again or is draining."""
        if not await self._redis.hexists(keys.WORKERS, worker_id):
            return Standing.UNKNOWN
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.heartbeat_key(worker_id), to_json(load), px=self._ttl_ms)
            pipe.hset(keys.LAST_SEEN, worker_id, time.time())
            pipe.sismember(keys.DRAINING, worker_id)
            draining = (await pipe.execute())[-1]
        return Standing.DRAINING if draining else Standing.MEMBER

    async def drain(self, worker_id: WorkerId) -> bool:
        """Marks a worker draining; False when no such worker is registered."""
        if not await self._redis.hexists(keys.WORKERS, worker_id):
            return False
        await self._redis.sadd(keys.DRAINING, worker_id)
        return True

    async def leave(self, worker_id: WorkerId) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.WORKERS, worker_id)
            pipe.hdel(keys.LAST_SEEN, worker_id)
            pipe.delete(keys.heartbeat_key(worker_id))
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
