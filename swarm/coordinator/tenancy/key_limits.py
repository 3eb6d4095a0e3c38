"""KeyLimits: a created key's requests/min, tokens/min and concurrent streams, enforced swarm-wide in Redis.

Requests and tokens per minute are token buckets holding a minute's allowance, refilled
continuously; every coordinator shares them through one Lua script, so admission is one
atomic round trip and two coordinators cannot both spend the last token.

Tokens are reserved and settled: a request is admitted while the key's token bucket is not
empty (in debt), and is charged its max_tokens at admission, since the prompt's token count
is known only to the worker. When it finishes it is charged what it really used (prompt +
completion tokens, from its Finished event) instead: the unused reservation is refunded and
the prompt is paid. A stream that ends without finishing (client gone, failure) is charged
the completion tokens it got. A key thus runs over its tokens/min by at most the requests it
had in flight, and pays that back before its next admission.

An idle key's buckets expire after an hour (the scripts' PEXPIRE), and then read as full.
Concurrent streams are a sorted set of leases (see redis_keys.KEY_STREAMS_PREFIX).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys

STREAM_LEASE_MS = 30_000  # a crashed coordinator's stream slots free themselves after this

# First checks the key itself, so a key revoked or expired a moment ago is refused here whatever its
# coordinator's cached record says; then its limits. KEYS: buckets hash, streams zset, the key's record.
# ARGV: now ms, requests/min, tokens/min, max streams, tokens to reserve, stream member, lease end ms.
# Returns {1} when admitted, else {0, limit or "revoked" or "expired", retry-after ms}.
_ADMIT = """
local now = tonumber(ARGV[1])
local key = redis.call('HMGET', KEYS[3], 'revoked', 'expires_ms')
if key[1] ~= '0' then return {0, 'revoked', 0} end
local expires = tonumber(key[2]) or 0
if expires > 0 and expires <= now then return {0, 'expired', 0} end
local rpm, tpm, max_streams = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local function level(name, per_minute)
  local saved = redis.call('HMGET', KEYS[1], name, name .. '_ms')
  local l, t = tonumber(saved[1]), tonumber(saved[2])
  if not l or not t then return per_minute end
  return math.min(per_minute, l + math.max(0, now - t) * per_minute / 60000)
end
if max_streams > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if redis.call('ZCARD', KEYS[2]) >= max_streams then return {0, 'streams', 1000} end
end
local requests, tokens = 0, 0
if rpm > 0 then
  requests = level('requests', rpm)
  if requests < 1 then return {0, 'requests', math.ceil((1 - requests) * 60000 / rpm)} end
end
if tpm > 0 then
  tokens = level('tokens', tpm)
  if tokens <= 0 then return {0, 'tokens', math.ceil((1 - tokens) * 60000 / tpm)} end
end
if rpm > 0 then redis.call('HSET', KEYS[1], 'requests', tostring(requests - 1), 'requests_ms', now) end
if tpm > 0 then redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - tonumber(ARGV[5])), 'tokens_ms', now) end
if rpm > 0 or tpm > 0 then redis.call('PEXPIRE', KEYS[1], 3600000) end
if max_streams > 0 then
  redis.call('ZADD', KEYS[2], ARGV[7], ARGV[6])
  redis.call('PEXPIRE', KEYS[2], ARGV[7] - now)
end
return {1}
"""

# Settles a finished stream: charges (or refunds) the difference between its use and its reservation,
# and gives its stream slot back. KEYS: buckets hash, streams zset. ARGV: now ms, tokens/min, difference,
# stream member.
_SETTLE = """
local now, tpm, difference = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if tpm > 0 and difference ~= 0 then
  local saved = redis.call('HMGET', KEYS[1], 'tokens', 'tokens_ms')
  local l, t = tonumber(saved[1]), tonumber(saved[2])
  if not l or not t then l, t = tpm, now end
  l = math.min(tpm, l + math.max(0, now - t) * tpm / 60000) - difference
  redis.call('HSET', KEYS[1], 'tokens', tostring(math.min(tpm, l)), 'tokens_ms', now)
  redis.call('PEXPIRE', KEYS[1], 3600000)
end
redis.call('ZREM', KEYS[2], ARGV[4])
return 1
"""


@dataclass(frozen=True)
class Refusal:
    limit: str  # "requests", "tokens" or "streams"; "revoked" or "expired" for the key itself
    retry_after_s: float


@dataclass(frozen=True)
class Limits:
    requests_per_minute: int
    tokens_per_minute: int
    max_streams: int


class KeyLimits:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._admit = redis.register_script(_ADMIT)
        self._settle = redis.register_script(_SETTLE)

    async def admit(self, digest: str, limits: Limits, reserve: int, stream: str, now_ms: int) -> Refusal | None:
        """Checks the key is neither revoked nor expired, then takes a request and reserve tokens from its buckets
        and a stream slot, all or nothing (limits of 0 take nothing)."""
        answer = await self._admit(
            keys=[keys.key_buckets_key(digest), keys.key_streams_key(digest), keys.api_key_key(digest)],
            args=[
                now_ms,
                limits.requests_per_minute,
                limits.tokens_per_minute,
                limits.max_streams,
                reserve,
                stream,
                now_ms + STREAM_LEASE_MS,
            ],
        )
        if int(answer[0]) == 1:
            return None
        limit = answer[1].decode() if isinstance(answer[1], bytes) else str(answer[1])
        return Refusal(limit, math.ceil(int(answer[2]) / 1000))

    async def settle(self, digest: str, limits: Limits, difference: int, stream: str, now_ms: int) -> None:
        """Charges difference more tokens (negative: refunds) and frees the stream's slot."""
        await self._settle(
            keys=[keys.key_buckets_key(digest), keys.key_streams_key(digest)],
            args=[now_ms, limits.tokens_per_minute, difference, stream],
        )

    async def renew(self, leases: dict[str, list[str]], now_ms: int) -> None:
        """Extends the leases of the streams still open (digest -> stream members) by STREAM_LEASE_MS."""
        if not leases:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for digest, streams in leases.items():
                pipe.zadd(keys.key_streams_key(digest), {s: now_ms + STREAM_LEASE_MS for s in streams}, xx=True)
                pipe.pexpire(keys.key_streams_key(digest), STREAM_LEASE_MS)
            await pipe.execute()
