"""RequestStore: requests, their queue, the pieces sent so far and undelivered results, kept in Redis."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.fairness.queue_tags import class_base, tag_step
from swarm.coordinator.ownership.request_leases import LEASE_TTL_S, RequestLeases, new_coordinator_id
from swarm.coordinator.relay.piece_journal import PieceJournal, piece_fields, piece_from_fields, pieces_in_order
from swarm.coordinator.usage.usage_store import UsageStore
from swarm.shared import tracing
from swarm.shared.codec import finished_from_dict, request_from_json, to_json
from swarm.shared.redis_connection import NO_REPLICAS, DurableWrites
from swarm.shared.types import Finished, GenerationRequest, TextPiece


@dataclass(frozen=True)
class Admitted:
    """What RequestStore.admit did: nothing (known, or full_at > 0), or queued the request and maybe claimed it."""

    known: bool = False  # Redis has a request under the id: nothing was written
    full_at: int = 0  # the queue was full with this many waiting: nothing was written
    enqueued_ms: int = 0
    score: float = 0.0
    claimed: bool = False  # taken off the queue for the worker asked for: it is running there


@dataclass(frozen=True)
class StoredResult:
    pieces: tuple[TextPiece, ...]
    finished: Finished


@dataclass(frozen=True)
class StoredRequest:
    request: GenerationRequest
    state: keys.RequestState
    enqueued_ms: int
    result: StoredResult | None = None
    sent: tuple[TextPiece, ...] = ()  # the pieces its followers may have received before it stopped
    owner: str = ""  # the coordinator whose lease holds it now; "" once the lease expired or it ended
    score: float = 0.0  # its place in the queue (fairness.queue_tags), fixed when it was first queued


# KEYS: the request hash, its lease, the queue, its pieces, the classes' virtual times, the tenants'
# virtual finishes, when each tenant last queued a request, the running set. ARGV: the request as JSON, now
# (ms), the owner, the lease TTL (ms), the request id, its class, the class's base score, the tenant, its
# step (1/weight), then: '1' to do nothing for an id Redis has a request under, the queue bound (0: none),
# and a worker id to claim the request for at once when it is first in the queue ('': leave it queued).
# The fair queue tag (queue_tags.queue_tag) is taken and the tenant's finish moved in the same step, so
# coordinators sharing the queue agree on it. The claim is _CLAIM's for one request: the dispatcher's pass
# would take the queue's first request for a free worker anyway, and doing it here saves its wake-up and a
# round trip on the way to a first token.
# Returns {'known'}, {'full', the queue's depth}, or {'queued', the score as a string (Lua numbers reach
# Redis as integers), 1 if claimed else 0}.
_ENQUEUE = """
if ARGV[10] == '1' and redis.call('HEXISTS', KEYS[1], 'request') == 1 then return {'known'} end
local bound = tonumber(ARGV[11])
if bound > 0 then
  local depth = redis.call('ZCARD', KEYS[3])
  if depth >= bound then return {'full', depth} end
end
local start = tonumber(ARGV[7])
local class_time = tonumber(redis.call('HGET', KEYS[5], ARGV[6]))
if class_time and class_time > start then start = class_time end
local finish_field = ARGV[6] .. ':' .. ARGV[8]
local finish = tonumber(redis.call('HGET', KEYS[6], finish_field))
if finish and finish > start then start = finish end
local score = string.format('%.17g', start)
redis.call('HSET', KEYS[6], finish_field, string.format('%.17g', start + tonumber(ARGV[9])))
redis.call('HSET', KEYS[7], ARGV[8], ARGV[2])
redis.call('HSET', KEYS[1], 'request', ARGV[1], 'state', 'queued', 'enqueued_ms', ARGV[2], 'coordinator', ARGV[3],
  'score', score, 'priority', ARGV[6])  -- RequestState.QUEUED
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
redis.call('ZADD', KEYS[3], score, ARGV[5])
redis.call('DEL', KEYS[4])
if ARGV[12] == '' or redis.call('ZRANGE', KEYS[3], 0, 0)[1] ~= ARGV[5] then return {'queued', score, 0} end
redis.call('ZREM', KEYS[3], ARGV[5])
if not class_time or tonumber(score) > class_time then redis.call('HSET', KEYS[5], ARGV[6], score) end
redis.call('SADD', KEYS[8], ARGV[5])
redis.call('HSET', KEYS[1], 'state', 'running', 'worker', ARGV[12])  -- RequestState.RUNNING
return {'queued', score, 1}
"""

# KEYS: when each tenant last queued a request. ARGV: the oldest time (ms) that still counts as active.
# Returns the tenants active since then and forgets the others.
_ACTIVE_TENANTS = """
local active = {}
local seen = redis.call('HGETALL', KEYS[1])
for i = 1, #seen, 2 do
  if tonumber(seen[i + 1]) >= tonumber(ARGV[1]) then
    active[#active + 1] = seen[i]
  else
    redis.call('HDEL', KEYS[1], seen[i])
  end
end
return active
"""

# KEYS: the queue, the running set, the classes' virtual times, then a request hash and its lease per ARGV
# pair (request id, worker id) after the first two ARGV, the owner and the lease TTL (ms). A request taken
# moves its class's virtual time up to its score (queue_tags.advance_class_time).
_CLAIM = """
local won = {}
for i = 4, #KEYS, 2 do
  local pair = (i - 4) / 2
  local id, worker = ARGV[2 * pair + 3], ARGV[2 * pair + 4]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and redis.call('ZREM', KEYS[1], id) == 1 then
    local class = redis.call('HGET', KEYS[i], 'priority') or '0'
    local class_time = tonumber(redis.call('HGET', KEYS[3], class))
    if not class_time or tonumber(score) > class_time then redis.call('HSET', KEYS[3], class, score) end
    redis.call('SADD', KEYS[2], id)
    redis.call('HSET', KEYS[i], 'state', 'running', 'worker', worker, 'coordinator', ARGV[1])  -- RUNNING
    redis.call('SET', KEYS[i + 1], ARGV[1], 'PX', ARGV[2])
    won[#won + 1] = 1
  else
    won[#won + 1] = 0
  end
end
return won
"""


# KEYS: the request hash, its pieces, lease and watched keys, the running set. ARGV: the request id, its
# result as JSON, the result TTL, this coordinator, the delivered grace. A result written to a client
# here is kept for the grace (the client may not have read it when this coordinator dies), or for
# the result TTL when a client follows it through another coordinator (one watching from here has
# just been answered here).
_DELIVERED = """
redis.call('SREM', KEYS[5], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
redis.call('HSET', KEYS[1], 'state', 'done', 'result', ARGV[2])  -- RequestState.DONE
local watcher = redis.call('GET', KEYS[4])
if watcher and watcher ~= ARGV[4] then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return 1
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('DEL', KEYS[4])
return 0
"""


class RequestStore:
    """Requests in Redis, each owned through a lease by the coordinator `owner` (a random id if not given)."""

    def __init__(
        self, redis: Redis, owner: str = "", lease_ttl_s: float = LEASE_TTL_S, *, durable: DurableWrites = NO_REPLICAS
    ) -> None:
        self._redis = redis
        self._durable = durable  # a request accepted waits for a replica to hold it (Sentinel)
        self._enqueue_script = redis.register_script(_ENQUEUE)
        self._active_tenants = redis.register_script(_ACTIVE_TENANTS)
        self._claim = redis.register_script(_CLAIM)
        self._delivered = redis.register_script(_DELIVERED)
        self.leases = RequestLeases(redis, owner or new_coordinator_id(), lease_ttl_s)
        self._journal = PieceJournal(redis, self.leases.owner, durable)
        self.usage = UsageStore(redis)  # tokens accounted per request as it ends (coordinator.usage)

    async def enqueue(self, request: GenerationRequest) -> tuple[int, float]:
        """Queues the request, owned by this store's coordinator; returns when (ms) and its queue score."""
        queued = await self.admit(request)
        return queued.enqueued_ms, queued.score

    async def admit(
        self, request: GenerationRequest, *, if_new: bool = False, max_queue: int = 0, claim_for: str = ""
    ) -> Admitted:
        """Queues the request in one round trip, owned by this store's coordinator.

        if_new: unless Redis already has a request under its id (then `known`, nothing written).
        max_queue: unless that many requests wait already (then `full`, nothing written; 0: no bound).
        claim_for: a worker id to claim it for at once if it is first in the queue (`claimed`).
        """
        now_ms = int(time.time() * 1000)
        with tracing.span("redis.enqueue"):
            reply = await self._enqueue_script(
                keys=[
                    keys.request_key(request.request_id),
                    keys.request_lease_key(request.request_id),
                    keys.QUEUE,
                    keys.request_pieces_key(request.request_id),
                    keys.FAIR_CLASS_TIME,
                    keys.FAIR_TENANT_FINISH,
                    keys.FAIR_TENANT_SEEN,
                    keys.RUNNING,
                ],
                args=[
                    to_json(request),
                    now_ms,
                    self.leases.owner,
                    self.leases.ttl_ms,
                    request.request_id,
                    request.priority,
                    repr(class_base(request.priority)),
                    request.tenant,
                    repr(tag_step(request.weight)),
                    "1" if if_new else "0",
                    max_queue,
                    claim_for,
                ],
            )
            if reply[0] == "known":
                return Admitted(known=True)
            if reply[0] == "full":
                return Admitted(full_at=int(reply[1]))
            await self._durable.confirm()
        return Admitted(enqueued_ms=now_ms, score=float(reply[1]), claimed=bool(int(reply[2])))

    async def active_tenants(self, window_s: float) -> set[str]:
        """The tenants that queued a request through any coordinator in the last window_s (fairness.slot_share)."""
        since_ms = int((time.time() - window_s) * 1000)
        return {str(t) for t in await self._active_tenants(keys=[keys.FAIR_TENANT_SEEN], args=[since_ms])}

    async def save_piece(self, request_id: str, index: int, piece: TextPiece) -> None:
        """Records the stream's piece number `index` before any follower gets it (see PieceJournal)."""
        # The first piece's client waits for this save: worth a span. Later ones are per token: never traced.
        with tracing.span("redis.save_first_piece") if index == 0 else tracing.NO_SPAN:
            await self._journal.save(request_id, index, piece)

    async def close(self) -> None:
        """Stops the journal's writer; pieces not yet saved are not sent either."""
        await self._journal.close()

    async def waiting(self, limit: int) -> list[str]:
        return [str(i) for i in await self._redis.zrange(keys.QUEUE, 0, limit - 1)]

    async def depth(self) -> int:
        return int(await self._redis.zcard(keys.QUEUE))

    async def load(self, request_id: str, watching: bool = False) -> StoredRequest | None:
        """The request as Redis has it; watching: a client here follows it though another coordinator owns it."""
        async with self._redis.pipeline(transaction=True) as pipe:
            if watching:
                pipe.set(keys.request_watched_key(request_id), self.leases.owner, px=self.leases.ttl_ms)
            pipe.hgetall(keys.request_key(request_id))
            pipe.hgetall(keys.request_pieces_key(request_id))
            pipe.get(keys.request_lease_key(request_id))
            *_, data, sent, owner = await pipe.execute()
        if "request" not in data:
            return None
        result = None
        if "result" in data:
            raw: dict[str, Any] = json.loads(data["result"])
            pieces = tuple(piece_from_fields(fields) for fields in raw["pieces"])
            result = StoredResult(pieces, finished_from_dict(raw["finished"]))
        return StoredRequest(
            request=request_from_json(data["request"]),
            state=keys.RequestState(str(data["state"])),
            enqueued_ms=int(data["enqueued_ms"]),
            score=float(data["score"]) if "score" in data else keys.queue_score(request_id, int(data["enqueued_ms"])),
            result=result,
            sent=pieces_in_order(sent),
            owner=str(owner or ""),
        )

    async def claim_many(self, pairs: list[tuple[str, str]]) -> list[bool]:
        """Takes (request id, worker id) pairs off the queue; False where someone else took it first.

        One atomic script, however many requests: a request leaves the queue only together with
        being marked running, so a Redis restart in between cannot lose it.
        """
        if not pairs:
            return []
        request_keys = [
            k for request_id, _ in pairs for k in (keys.request_key(request_id), keys.request_lease_key(request_id))
        ]
        flat = [value for pair in pairs for value in pair]
        won = await self._claim(
            keys=[keys.QUEUE, keys.RUNNING, keys.FAIR_CLASS_TIME, *request_keys],
            args=[self.leases.owner, self.leases.ttl_ms, *flat],
        )
        return [bool(w) for w in won]

    async def requeue(self, request_id: str, score: float) -> None:
        """Queues a request again (its worker failed or was full) at the place it had: its score."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.srem(keys.RUNNING, request_id)
            pipe.hset(keys.request_key(request_id), mapping={"state": keys.RequestState.QUEUED, "worker": ""})
            pipe.persist(keys.request_key(request_id))  # a failed request taken up again: it lives until it ends
            pipe.zadd(keys.QUEUE, {request_id: score})
            await pipe.execute()

    async def complete(self, request_id: str, result: StoredResult) -> None:
        """Keeps the result of a request no client is waiting for, until one asks or it expires."""
        key = keys.request_key(request_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.srem(keys.RUNNING, request_id)
            pipe.hset(key, mapping={"state": keys.RequestState.DONE, "result": result_json(result)})
            pipe.expire(key, keys.RESULT_TTL_S)
            pipe.delete(
                keys.request_pieces_key(request_id), keys.request_lease_key(request_id)
            )  # the result holds them
            await pipe.execute()

    async def delivered(self, request_id: str, result: StoredResult) -> None:
        """The result was written to a client here: kept briefly (it may not be read yet), or long for one elsewhere."""
        await self._delivered(
            keys=[
                keys.request_key(request_id),
                keys.request_pieces_key(request_id),
                keys.request_lease_key(request_id),
                keys.request_watched_key(request_id),
                keys.RUNNING,
            ],
            args=[request_id, result_json(result), keys.RESULT_TTL_S, self.leases.owner, keys.DELIVERED_GRACE_S],
        )

    async def watched(self, request_id: str) -> bool:
        """Whether a client follows the request through another coordinator now."""
        watcher = await self._redis.get(keys.request_watched_key(request_id))
        return watcher is not None and watcher != self.leases.owner

    async def keep_failed(self, request_id: str) -> None:
        """Keeps a request that failed for want of a worker, with its pieces, for a retry to resume (FAILED_TTL_S)."""
        key = keys.request_key(request_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.QUEUE, request_id)
            pipe.srem(keys.RUNNING, request_id)
            pipe.hset(key, mapping={"state": keys.RequestState.FAILED, "worker": "", "coordinator": ""})
            pipe.delete(keys.request_lease_key(request_id))
            pipe.expire(key, keys.FAILED_TTL_S)
            pipe.expire(keys.request_pieces_key(request_id), keys.FAILED_TTL_S)
            await pipe.execute()

    async def delivered_stored(self, request_id: str) -> None:
        """A client here has read a stored result: it goes after the delivered grace, like one run here."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.expire(keys.request_key(request_id), keys.DELIVERED_GRACE_S)
            pipe.delete(keys.request_watched_key(request_id))
            await pipe.execute()

    async def forget(self, request_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.QUEUE, request_id)
            pipe.srem(keys.RUNNING, request_id)
            pipe.delete(
                keys.request_key(request_id),
                keys.request_pieces_key(request_id),
                keys.request_lease_key(request_id),
                keys.request_watched_key(request_id),
            )
            await pipe.execute()

    async def running(self) -> list[str]:
        return sorted(str(i) for i in await self._redis.smembers(keys.RUNNING))


def result_json(result: StoredResult) -> str:
    return json.dumps({"pieces": [piece_fields(p) for p in result.pieces], "finished": asdict(result.finished)})
