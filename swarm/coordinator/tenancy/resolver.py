"""CallerResolver: the Access a presented API key grants, checked on every call (static keys, then Redis).

A static key (--api-key, file, $SWARM_API_KEYS) is checked in memory. A created key's record is
read from Redis and kept here for at most RECORD_CACHE_S, so a key revoked on another coordinator
is refused here within that; a new request of a created key is refused at once, though, since
the admission script (tenancy.admission) reads the record again in the same round trip that
spends its limits. A key's expiry is checked on every call against the clock.
"""

from __future__ import annotations

import time

from swarm.coordinator.auth.api_keys import HOW_TO_PASS, ApiKeyCheck
from swarm.coordinator.request_identity import owner_of_key
from swarm.coordinator.tenancy.caller import INTERACTIVE, OPEN_ACCESS, Access, Caller
from swarm.coordinator.tenancy.key_record import KeyRecord, record_refusal
from swarm.coordinator.tenancy.key_store import KeyStore, key_digest
from swarm.shared.errors import ErrorCode, SwarmError

STATIC_NAME_PREFIX = "key-"
RECORD_CACHE_S = 0.5
MAX_CACHED_RECORDS = 4096  # past this the cache starts again empty: a flood of wrong keys cannot grow it


def static_caller(key: str) -> Caller:
    owner = owner_of_key(key)
    return Caller(name=STATIC_NAME_PREFIX + owner[:8], owner=owner, admin=True, priority=INTERACTIVE, weight=1.0)


def _refused(why: str) -> SwarmError:
    return SwarmError(ErrorCode.UNAUTHENTICATED, why)


class CallerResolver:
    def __init__(self, static: ApiKeyCheck, store: KeyStore | None) -> None:
        self.static = static
        self._store = store
        self._records: dict[str, tuple[float, KeyRecord | None]] = {}  # digest -> (read at, record)

    @property
    def required(self) -> bool:
        """Whether calls need a key at all: only a coordinator with static keys requires them."""
        return self.static.required

    async def resolve(self, presented: str | None) -> Access:
        """The access presented grants; UNAUTHENTICATED for a missing, wrong, revoked or expired key."""
        if not self.static.required:
            return OPEN_ACCESS
        if not presented:
            raise _refused(f"missing API key: {HOW_TO_PASS}")
        if self.static.allows(presented):
            return Access(static_caller(presented))
        digest = key_digest(presented)
        record = await self._record(digest)
        if record is None:
            raise _refused(f"wrong API key: {HOW_TO_PASS}")
        refusal = record_refusal(record.name, record, int(time.time() * 1000))
        if refusal:
            raise _refused(refusal)
        caller = Caller(
            name=record.name,
            owner=owner_of_key(presented),
            admin=record.admin,
            priority=record.priority,
            weight=record.weight,
        )
        return Access(caller, record, digest)

    async def _record(self, digest: str) -> KeyRecord | None:
        if self._store is None:
            return None
        now = time.monotonic()
        cached = self._records.get(digest)
        if cached is not None and now - cached[0] < RECORD_CACHE_S:
            return cached[1]
        record = await self._store.lookup(digest)
        if len(self._records) >= MAX_CACHED_RECORDS:
            self._records.clear()
        self._records[digest] = (now, record)
        return record


def require_admin(access: Access, what: str) -> None:
    """PERMISSION_DENIED unless the caller holds an admin key."""
    if not access.caller.admin:
        raise SwarmError(
            ErrorCode.PERMISSION_DENIED, f"{what} needs an admin key; API key {access.caller.name!r} is not one"
        )
