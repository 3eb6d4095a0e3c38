"""KeyStore: API keys created at run time, kept in Redis under the digest of their secret, never the secret."""

from __future__ import annotations

import hashlib
import secrets

from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.tenancy.key_record import KeyRecord
from swarm.shared.errors import ErrorCode, SwarmError

SECRET_BYTES = 32  # secrets.token_urlsafe: 43 characters, 256 bits
# Domain separation: this digest of a key is no digest used anywhere else for it (request owners, checks).
_DIGEST_SALT = b"swarm api key\0"

# Takes the name and stores the record in one step, so two coordinators creating one name cannot both win.
# KEYS: names hash, record hash. ARGV: name, digest, then field, value pairs.
_CREATE = """
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[2], unpack(ARGV, 3))
return 1
"""


def key_digest(secret: str) -> str:
    return hashlib.sha256(_DIGEST_SALT + secret.encode()).hexdigest()


def new_secret() -> str:
    return "sk-swarm-" + secrets.token_urlsafe(SECRET_BYTES)


class KeyStore:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._create = redis.register_script(_CREATE)

    async def create(self, record: KeyRecord) -> str:
        """Stores the record under a new secret and returns the secret (shown once: the swarm keeps its digest)."""
        secret = new_secret()
        fields = [item for pair in record.to_hash().items() for item in pair]
        created = await self._create(
            keys=[keys.API_KEY_NAMES, keys.api_key_key(key_digest(secret))],
            args=[record.name, key_digest(secret), *fields],
        )
        if not created:
            raise SwarmError(ErrorCode.ALREADY_EXISTS, f"name: a key named {record.name!r} exists already")
        return secret

    async def lookup(self, digest: str) -> KeyRecord | None:
        """The record of the key with this digest; None for a key nobody created."""
        data: dict[str, str] = await self._redis.hgetall(keys.api_key_key(digest))  # type: ignore[assignment]
        return KeyRecord.from_hash(data) if data else None

    async def lookup_names(self, names: list[str]) -> dict[str, KeyRecord | None]:
        """The records of those names that created keys have (None: its record is gone), in two round trips;
        a name no created key has (a static key's, or none) is left out."""
        digests: list[str | None] = await self._redis.hmget(keys.API_KEY_NAMES, names)  # type: ignore[assignment]
        created = [(name, str(digest)) for name, digest in zip(names, digests, strict=True) if digest is not None]
        if not created:
            return {}
        async with self._redis.pipeline(transaction=False) as pipe:
            for _name, digest in created:
                pipe.hgetall(keys.api_key_key(digest))
            found = await pipe.execute()
        pairs = zip(created, found, strict=True)
        return {name: KeyRecord.from_hash(data) if data else None for (name, _digest), data in pairs}

    async def records(self) -> list[KeyRecord]:
        """Every created key, revoked ones included, by name."""
        names: dict[str, str] = await self._redis.hgetall(keys.API_KEY_NAMES)  # type: ignore[assignment]
        ordered = sorted(names)
        async with self._redis.pipeline(transaction=False) as pipe:
            for name in ordered:
                pipe.hgetall(keys.api_key_key(names[name]))
            found = await pipe.execute()
        return [KeyRecord.from_hash(data) for data in found if data]

    async def revoke(self, name: str) -> KeyRecord:
        """Marks the key revoked: every coordinator refuses it from its next call on."""
        digest = await self._redis.hget(keys.API_KEY_NAMES, name)
        if digest is None:
            raise SwarmError(ErrorCode.NOT_FOUND, f"name: no key named {name!r}")
        await self._redis.hset(keys.api_key_key(str(digest)), "revoked", "1")
        record = await self.lookup(str(digest))
        if record is None:
            raise SwarmError(ErrorCode.NOT_FOUND, f"name: no key named {name!r}")
        return record
