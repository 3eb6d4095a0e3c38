"""Usage in Redis: tokens per tenant, model and worker, and workers' busy seconds, in hour buckets.

Every count is a HINCRBY in a Lua script, so coordinators sharing Redis add up and a restart loses
nothing. A request is counted once: the script marks its hash (`usage_counted`) in the same step, so
a coordinator that takes a request over after its predecessor counted it does not count it again.
"""

from __future__ import annotations

import json
import time

from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.shared.usage_types import TokenCounts, UsageReport, UsageRow, WorkerBusy

HOUR_S = 3600
# Hour buckets are kept this long: `swarm usage --since` reaches back as far.
RETENTION_S = 400 * 24 * 3600
_SEP = "\t"
_KINDS = ("prompt", "cached_prompt", "completion", "requests")

# KEYS: the request's hash, the hour's bucket, the set of hours, the all-time totals. ARGV: the hour, the
# field prefix (tenant, model, worker), then prompt, cached, completion token counts, the bucket's TTL.
_COUNT = """
if redis.call('EXISTS', KEYS[1]) == 1 and redis.call('HSETNX', KEYS[1], 'usage_counted', '1') == 0 then
  return 0
end
for _, bucket in ipairs({KEYS[2], KEYS[4]}) do
  redis.call('HINCRBY', bucket, ARGV[2] .. 'prompt', ARGV[3])
  redis.call('HINCRBY', bucket, ARGV[2] .. 'cached_prompt', ARGV[4])
  redis.call('HINCRBY', bucket, ARGV[2] .. 'completion', ARGV[5])
  redis.call('HINCRBY', bucket, ARGV[2] .. 'requests', 1)
end
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('ZADD', KEYS[3], ARGV[1], ARGV[1])
return 1
"""

# KEYS: the workers' last reported busy seconds, the hour's bucket, the set of hours, the workers' rates,
# the all-time totals.
# ARGV: worker, its cumulative busy seconds, the hour, the bucket's TTL, its rates as JSON. A worker that
# restarted reports less than before: all it reports is new.
_BUSY = """
local last = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local now = tonumber(ARGV[2])
local delta = now - last
if delta < 0 then delta = now end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[5])
if delta > 0 then
  redis.call('HINCRBYFLOAT', KEYS[2], 'busy' .. '\t' .. ARGV[1], string.format('%.6f', delta))
  redis.call('HINCRBYFLOAT', KEYS[5], 'busy' .. '\t' .. ARGV[1], string.format('%.6f', delta))
  redis.call('EXPIRE', KEYS[2], ARGV[4])
  redis.call('ZADD', KEYS[3], ARGV[3], ARGV[3])
end
return 1
"""


def current_hour(now_s: float | None = None) -> int:
    return int((time.time() if now_s is None else now_s) // HOUR_S)


def _clean(name: str) -> str:
    return name.replace(_SEP, " ")


class UsageStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._count = redis.register_script(_COUNT)
        self._busy = redis.register_script(_BUSY)

    async def count(self, request_id: str, tenant: str, model: str, worker: str, tokens: TokenCounts) -> bool:
        """Adds a request's tokens, unless it was counted already; True if this call counted it."""
        hour = current_hour()
        prefix = _SEP.join(("tokens", _clean(tenant), _clean(model), _clean(worker), ""))
        counted = await self._count(
            keys=[keys.request_key(request_id), keys.usage_hour_key(hour), keys.USAGE_HOURS, keys.USAGE_TOTAL],
            args=[hour, prefix, tokens.prompt, tokens.cached_prompt, tokens.completion, RETENTION_S],
        )
        return bool(counted)

    async def busy(self, worker: str, busy_s: float, watts: float, cost_per_hour: float) -> None:
        """Records a worker's cumulative busy seconds from its heartbeat; the bucket gets what is new."""
        hour = current_hour()
        rates = json.dumps({"watts": watts, "cost_per_hour": cost_per_hour})
        await self._busy(
            keys=[
                keys.USAGE_BUSY_SEEN,
                keys.usage_hour_key(hour),
                keys.USAGE_HOURS,
                keys.USAGE_WORKER_RATES,
                keys.USAGE_TOTAL,
            ],
            args=[_clean(worker), repr(busy_s), hour, RETENTION_S, rates],
        )

    async def report(self, since_hour: int, now_s: float | None = None) -> UsageReport:
        """Usage summed over the hour buckets from since_hour on; since_hour 0: all time, from the totals."""
        now = time.time() if now_s is None else now_s
        hours: list[int] = []
        if since_hour > 0:
            hours = [int(str(h)) for h in await self._redis.zrangebyscore(keys.USAGE_HOURS, since_hour, "+inf")]
        async with self._redis.pipeline(transaction=False) as pipe:
            if since_hour <= 0:
                pipe.hgetall(keys.USAGE_TOTAL)
                pipe.zrange(keys.USAGE_HOURS, 0, 0)
            for hour in hours:
                pipe.hgetall(keys.usage_hour_key(hour))
            pipe.hgetall(keys.USAGE_WORKER_RATES)
            *buckets, rates = await pipe.execute()
        if since_hour <= 0:  # the window starts with the first hour counted
            total, first = buckets
            buckets = [total]
            since_hour = int(str(first[0])) if first else current_hour(now)
        tokens: dict[tuple[str, str, str], dict[str, int]] = {}
        busy: dict[str, float] = {}
        for bucket in buckets:
            for field, value in bucket.items():
                parts = str(field).split(_SEP)
                if parts[0] == "tokens" and len(parts) == 5 and parts[4] in _KINDS:
                    counts = tokens.setdefault((parts[1], parts[2], parts[3]), {})
                    counts[parts[4]] = counts.get(parts[4], 0) + int(value)
                elif parts[0] == "busy" and len(parts) == 2:
                    busy[parts[1]] = busy.get(parts[1], 0.0) + float(value)
        rows = tuple(
            UsageRow(tenant, model, worker, TokenCounts(**counts))
            for (tenant, model, worker), counts in sorted(tokens.items())
        )
        workers = tuple(
            WorkerBusy(worker, seconds, **_rates(rates.get(worker))) for worker, seconds in sorted(busy.items())
        )
        return UsageReport(since_hour, rows, workers, max(0.0, now - since_hour * HOUR_S))


def _rates(text: str | None) -> dict[str, float]:
    if not text:
        return {}
    raw = json.loads(text)
    return {"watts": float(raw.get("watts", 0.0)), "cost_per_hour": float(raw.get("cost_per_hour", 0.0))}
