"""RequestStore: requests, their queue, the pieces sent so far and undelivered results, kept in Redis."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.ownership.request_leases import LEASE_TTL_S, RequestLeases, new_coordinator_id
from swarm.coordinator.relay.piece_journal import PieceJournal, piece_fields, piece_from_fields, pieces_in_order
from swarm.shared import tracing
from swarm.shared.codec import finished_from_dict, request_from_json, to_json
from swarm.shared.redis_connection import NO_REPLICAS, DurableWrites
from swarm.shared.types import Finished, GenerationRequest, TextPiece


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


# KEYS: the queue, the running set, then a request hash and its lease per ARGV pair (request id, worker
# id) after the first two ARGV, the owner and the lease TTL (ms).
_CLAIM = """
local won = {}
for i = 3, #KEYS, 2 do
  local pair = (i - 3) / 2
  local id, worker = ARGV[2 * pair + 3], ARGV[2 * pair + 4]
  if redis.call('ZREM', KEYS[1], id) == 1 then
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
# result as JSON, the result TTL, this coordinator. A result that reached a client is forgotten, unless a
# client follows it through another coordinator (one watching from here has just been answered here).
_DELIVERED = """
redis.call('SREM', KEYS[5], ARGV[1])
redis.call('DEL', KEYS[3])
local watcher = redis.call('GET', KEYS[4])
if watcher and watcher ~= ARGV[4] then
  redis.call('HSET', KEYS[1], 'state', 'done', 'result', ARGV[2])  -- RequestState.DONE
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  redis.call('DEL', KEYS[2])
  return 1
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[4])
return 0
"""


class RequestStore:
    """Requests in Redis, each owned through a lease by the coordinator `owner` (a random id if not given)."""

    def __init__(
        self, redis: Redis, owner: str = "", lease_ttl_s: float = LEASE_TTL_S, *, durable: DurableWrites = NO_REPLICAS
    ) -> None:
        self._redis = redis
        self._durable = durable  # a request accepted waits for a replica to hold it (Sentinel)
        self._claim = redis.register_script(_CLAIM)
        self._delivered = redis.register_script(_DELIVERED)
        self.leases = RequestLeases(redis, owner or new_coordinator_id(), lease_ttl_s)
        self._journal = PieceJournal(redis, self.leases.owner, durable)

    async def enqueue(self, request: GenerationRequest) -> int:
        """Queues the request, owned by this store's coordinator."""
        now_ms = int(time.time() * 1000)
        with tracing.span("redis.enqueue"):
            await self._enqueue(request, now_ms)
        return now_ms

    async def _enqueue(self, request: GenerationRequest, now_ms: int) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                keys.request_key(request.request_id),
                mapping={
                    "request": to_json(request),
                    "state": keys.RequestState.QUEUED,
                    "enqueued_ms": now_ms,
                    "coordinator": self.leases.owner,
                },
            )
            pipe.set(keys.request_lease_key(request.request_id), self.leases.owner, px=self.leases.ttl_ms)
            pipe.zadd(keys.QUEUE, {request.request_id: keys.queue_score(request.request_id, now_ms)})
            pipe.delete(keys.request_pieces_key(request.request_id))
            await pipe.execute()
        await self._durable.confirm()

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
            keys=[keys.QUEUE, keys.RUNNING, *request_keys], args=[self.leases.owner, self.leases.ttl_ms, *flat]
        )
        return [bool(w) for w in won]

    async def requeue(self, request_id: str, enqueued_ms: int) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.srem(keys.RUNNING, request_id)
            pipe.hset(keys.request_key(request_id), mapping={"state": keys.RequestState.QUEUED, "worker": ""})
            pipe.persist(keys.request_key(request_id))  # a failed request taken up again: it lives until it ends
            pipe.zadd(keys.QUEUE, {request_id: keys.queue_score(request_id, enqueued_ms)})
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
        """The result reached a client here: forgets the request, or keeps its result for a client elsewhere."""
        await self._delivered(
            keys=[
                keys.request_key(request_id),
                keys.request_pieces_key(request_id),
                keys.request_lease_key(request_id),
                keys.request_watched_key(request_id),
                keys.RUNNING,
            ],
            args=[request_id, result_json(result), keys.RESULT_TTL_S, self.leases.owner],
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
