"""RequestStore: requests, their queue, the pieces sent so far and undelivered results, kept in Redis."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.piece_journal import PieceJournal, pieces_in_order
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


# KEYS: the queue, the running set, then one request hash per ARGV pair (request id, worker id).
_CLAIM = """
local won = {}
for i = 3, #KEYS do
  local id, worker = ARGV[2 * (i - 3) + 1], ARGV[2 * (i - 3) + 2]
  if redis.call('ZREM', KEYS[1], id) == 1 then
    redis.call('SADD', KEYS[2], id)
    redis.call('HSET', KEYS[i], 'state', 'running', 'worker', worker)  -- RequestState.RUNNING
    won[#won + 1] = 1
  else
    won[#won + 1] = 0
  end
end
return won
"""


class RequestStore:
    def __init__(self, redis: Redis, *, durable: DurableWrites = NO_REPLICAS) -> None:
        self._redis = redis
        self._durable = durable  # a request accepted waits for a replica to hold it (Sentinel)
        self._claim = redis.register_script(_CLAIM)
        self._journal = PieceJournal(redis)

    async def enqueue(self, request: GenerationRequest) -> int:
        now_ms = int(time.time() * 1000)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                keys.request_key(request.request_id),
                mapping={"request": to_json(request), "state": keys.RequestState.QUEUED, "enqueued_ms": now_ms},
            )
            pipe.zadd(keys.QUEUE, {request.request_id: keys.queue_score(request.request_id, now_ms)})
            pipe.delete(keys.request_pieces_key(request.request_id))
            await pipe.execute()
        await self._durable.confirm()
        return now_ms

    async def save_piece(self, request_id: str, index: int, piece: TextPiece) -> None:
        """Records the stream's piece number `index` before any follower gets it (see PieceJournal)."""
        await self._journal.save(request_id, index, piece)

    async def close(self) -> None:
        """Stops the journal's writer; pieces not yet saved are not sent either."""
        await self._journal.close()

    async def waiting(self, limit: int) -> list[str]:
        return [str(i) for i in await self._redis.zrange(keys.QUEUE, 0, limit - 1)]

    async def depth(self) -> int:
        return int(await self._redis.zcard(keys.QUEUE))

    async def load(self, request_id: str) -> StoredRequest | None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.request_key(request_id))
            pipe.hgetall(keys.request_pieces_key(request_id))
            data, sent = await pipe.execute()
        if "request" not in data:
            return None
        result = None
        if "result" in data:
            raw: dict[str, Any] = json.loads(data["result"])
            pieces = tuple(TextPiece(text, tuple(ids)) for text, ids in raw["pieces"])
            result = StoredResult(pieces, finished_from_dict(raw["finished"]))
        return StoredRequest(
            request=request_from_json(data["request"]),
            state=keys.RequestState(str(data["state"])),
            enqueued_ms=int(data["enqueued_ms"]),
            result=result,
            sent=pieces_in_order(sent),
        )

    async def claim_many(self, pairs: list[tuple[str, str]]) -> list[bool]:
        """Takes (request id, worker id) pairs off the queue; False where someone else took it first.

        One atomic script, however many requests: a request leaves the queue only together with
        being marked running, so a Redis restart in between cannot lose it.
        """
        if not pairs:
            return []
        request_keys = [keys.request_key(request_id) for request_id, _ in pairs]
        flat = [value for pair in pairs for value in pair]
        won = await self._claim(keys=[keys.QUEUE, keys.RUNNING, *request_keys], args=flat)
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
        payload = {
            "pieces": [[p.text, list(p.token_ids)] for p in result.pieces],
            "finished": asdict(result.finished),
        }
        key = keys.request_key(request_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.srem(keys.RUNNING, request_id)
            pipe.hset(key, mapping={"state": keys.RequestState.DONE, "result": json.dumps(payload)})
            pipe.expire(key, keys.RESULT_TTL_S)
            pipe.delete(keys.request_pieces_key(request_id))  # the result holds them
            await pipe.execute()

    async def keep_failed(self, request_id: str) -> None:
        """Keeps a request that failed for want of a worker, with its pieces, for a retry to resume (FAILED_TTL_S)."""
        key = keys.request_key(request_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.QUEUE, request_id)
            pipe.srem(keys.RUNNING, request_id)
            pipe.hset(key, mapping={"state": keys.RequestState.FAILED, "worker": ""})
            pipe.expire(key, keys.FAILED_TTL_S)
            pipe.expire(keys.request_pieces_key(request_id), keys.FAILED_TTL_S)
            await pipe.execute()

    async def forget(self, request_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zrem(keys.QUEUE, request_id)
            pipe.srem(keys.RUNNING, request_id)
            pipe.delete(keys.request_key(request_id), keys.request_pieces_key(request_id))
            await pipe.execute()

    async def running(self) -> list[str]:
        return sorted(str(i) for i in await self._redis.smembers(keys.RUNNING))
