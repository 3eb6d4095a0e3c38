"""RequestLeases: which coordinator owns each queued or running request, kept in Redis with a TTL.

Several coordinators share one Redis. Each request belongs to the coordinator that accepted it (or
took it over): only the owner dispatches and relays it, renewing the leases of all its requests in
one round trip. A coordinator that dies stops renewing; once a lease has expired any coordinator
takes the request over, queued again after the pieces already saved, so no live owner's request is
ever run twice.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from enum import StrEnum

from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys

LEASE_TTL_S = 2.0


def new_coordinator_id() -> str:
    """A random id per coordinator process; host and pid only make logs readable."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


class TakeoverOutcome(StrEnum):
    TAKEN = "taken"  # now this coordinator's, queued (again) to run after its saved pieces
    HELD = "held"  # another coordinator's live lease holds it: follow it, do not run it
    DONE = "done"  # it finished; its result is kept for a client
    GONE = "gone"  # no such request (delivered, cancelled or expired)


@dataclass(frozen=True)
class Takeover:
    outcome: TakeoverOutcome
    pieces: int = 0  # pieces saved before it was taken over


# KEYS: lease, request hash per request. ARGV: owner, TTL (ms). A lease is renewed while its request
# still names this owner, even one that lapsed while the owner was slow and nobody took it over.
_RENEW = """
local kept = {}
for i = 1, #KEYS, 2 do
  local holder = redis.call('GET', KEYS[i])
  if holder == ARGV[1] or (not holder and redis.call('HGET', KEYS[i + 1], 'coordinator') == ARGV[1]) then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
    kept[#kept + 1] = 1
  else
    kept[#kept + 1] = 0
  end
end
return kept
"""

# KEYS: request hash, its lease, its pieces, the running set, the queue. ARGV: owner, TTL (ms), request
# id, queue score offset. Returns the pieces saved, or -1 gone, -2 held by a live peer, -3 done.
_TAKE_OVER = """
if redis.call('HEXISTS', KEYS[1], 'request') == 0 then
  redis.call('SREM', KEYS[4], ARGV[3])
  redis.call('ZREM', KEYS[5], ARGV[3])
  return -1
end
local holder = redis.call('GET', KEYS[2])
if holder and holder ~= ARGV[1] then
  return -2
end
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'done' then
  return -3
end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('HSET', KEYS[1], 'coordinator', ARGV[1])
if state ~= 'queued' then
  redis.call('SREM', KEYS[4], ARGV[3])
  redis.call('HSET', KEYS[1], 'state', 'queued', 'worker', '')
  redis.call('PERSIST', KEYS[1])
  local score = redis.call('HGET', KEYS[1], 'score')  -- its fair-queue place, kept
  if not score then score = tonumber(redis.call('HGET', KEYS[1], 'enqueued_ms')) + tonumber(ARGV[4]) end
  redis.call('ZADD', KEYS[5], score, ARGV[3])
end
-- Resumed after the pieces saved without a gap: any after a gap (writes a promoted replica lost) go.
local count = 0
while redis.call('HEXISTS', KEYS[3], tostring(count)) == 1 do
  count = count + 1
end
for _, field in ipairs(redis.call('HKEYS', KEYS[3])) do
  local index = tonumber(field)
  if index == nil or index >= count then
    redis.call('HDEL', KEYS[3], field)
  end
end
return count
"""

# KEYS: the running set, the queue. ARGV: the lease key prefix, how many queued ids to look at.
_ORPHANS = """
local ids = redis.call('SMEMBERS', KEYS[1])
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, tonumber(ARGV[2]) - 1)) do
  ids[#ids + 1] = id
end
local orphans = {}
for _, id in ipairs(ids) do
  if redis.call('EXISTS', ARGV[1] .. id) == 0 then
    orphans[#orphans + 1] = id
  end
end
return orphans
"""

# KEYS: leases. ARGV: owner. Deletes those this owner holds, so peers take them over at once.
_RELEASE = """
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
  end
end
return #KEYS
"""

_OUTCOMES = {-1: TakeoverOutcome.GONE, -2: TakeoverOutcome.HELD, -3: TakeoverOutcome.DONE}


class RequestLeases:
    def __init__(self, redis: Redis, owner: str, ttl_s: float = LEASE_TTL_S) -> None:
        self.owner = owner
        self.ttl_s = ttl_s
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self._renew = redis.register_script(_RENEW)
        self._take_over = redis.register_script(_TAKE_OVER)
        self._orphans = redis.register_script(_ORPHANS)
        self._release = redis.register_script(_RELEASE)

    async def renew(self, request_ids: list[str]) -> list[str]:
        """Renews this owner's leases in one round trip; returns the ids another coordinator took over."""
        if not request_ids:
            return []
        lease_keys = [k for i in request_ids for k in (keys.request_lease_key(i), keys.request_key(i))]
        kept = await self._renew(keys=lease_keys, args=[self.owner, self.ttl_ms])
        return [request_id for request_id, still in zip(request_ids, kept, strict=True) if not still]

    async def take_over(self, request_id: str) -> Takeover:
        """Makes the request this owner's unless a live peer holds it; a running one is queued again."""
        pieces = int(
            await self._take_over(
                keys=[
                    keys.request_key(request_id),
                    keys.request_lease_key(request_id),
                    keys.request_pieces_key(request_id),
                    keys.RUNNING,
                    keys.QUEUE,
                ],
                args=[self.owner, self.ttl_ms, request_id, keys.queue_score(request_id, 0)],
            )
        )
        return Takeover(_OUTCOMES[pieces]) if pieces < 0 else Takeover(TakeoverOutcome.TAKEN, pieces)

    async def orphans(self, queue_limit: int) -> list[str]:
        """Running requests, and the first queue_limit queued ones, whose lease has expired."""
        found = await self._orphans(keys=[keys.RUNNING, keys.QUEUE], args=[keys.REQUEST_LEASE_PREFIX, queue_limit])
        return [str(i) for i in found]

    async def release(self, request_ids: list[str]) -> None:
        """Gives up this owner's leases (a clean shutdown), so live peers take the requests over at once."""
        if request_ids:
            await self._release(keys=[keys.request_lease_key(i) for i in request_ids], args=[self.owner])
