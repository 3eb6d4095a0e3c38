"""DemandStore: which planned models requests asked for, kept in Redis so every coordinator's fleet answers them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys


@dataclass(frozen=True)
class DemandRecord:
    """Every coordinator's demand for planned models, as read from Redis."""

    wanted: Mapping[str, float]  # model -> unix time a request first asked for it while no worker served it
    last_used: Mapping[str, float]  # model -> unix time a request last asked for it


class DemandStore:
    def __init__(self, redis: Redis, want_ttl_s: float) -> None:
        self._redis = redis
        # A waiting request renews its want; once none has for this long, every request asking gave up.
        self._want_ttl_s = max(1, math.ceil(want_ttl_s))

    async def want(self, model: str, at: float) -> None:
        """A request waits for the model and no worker serves it; the first such time is kept."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hsetnx(keys.MODELS_WANTED, model, repr(at))
            pipe.expire(keys.MODELS_WANTED, self._want_ttl_s)
            await pipe.execute()

    async def used(self, model: str, at: float) -> None:
        await self._redis.hset(keys.MODELS_LAST_USED, model, repr(at))

    async def read(self) -> DemandRecord:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(keys.MODELS_WANTED)
            pipe.hgetall(keys.MODELS_LAST_USED)
            wanted, last_used = await pipe.execute()
        return DemandRecord(_times(wanted), _times(last_used))

    async def forget_wants(self, models: Iterable[str]) -> None:
        """The models are served now: no coordinator need move a node to them."""
        models = list(models)
        if models:
            await self._redis.hdel(keys.MODELS_WANTED, *models)


def _times(fields: Mapping[str, str]) -> dict[str, float]:
    return {str(model): float(at) for model, at in fields.items()}
