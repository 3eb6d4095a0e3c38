"""KeyAdmin: creating, listing and revoking API keys, for admin keys only, free of any wire format."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from swarm.coordinator.tenancy.caller import Access
from swarm.coordinator.tenancy.key_record import KeyRecord, KeySettings, new_record
from swarm.coordinator.tenancy.key_store import KeyStore
from swarm.coordinator.tenancy.resolver import require_admin
from swarm.shared.errors import ErrorCode, SwarmError

log = logging.getLogger(__name__)


class KeyAdmin:
    def __init__(self, store: KeyStore, keys_required: bool, on_revoke: Callable[[], None] = lambda: None) -> None:
        """on_revoke: called after a key is revoked here, so this coordinator ends its requests at once."""
        self._store = store
        self._keys_required = keys_required
        self._on_revoke = on_revoke

    def _check(self, access: Access) -> None:
        if not self._keys_required:  # keys created here would let nobody in who is not let in already
            raise SwarmError(
                ErrorCode.FAILED_PRECONDITION,
                "this coordinator requires no API key: start it with --api-key (or --api-keys-file, $SWARM_API_KEYS) "
                "to manage keys",
            )
        require_admin(access, "key management")

    async def create(self, access: Access, settings: KeySettings) -> tuple[KeyRecord, str]:
        """The new key's record and its secret (shown once)."""
        self._check(access)
        record = new_record(settings, int(time.time() * 1000))
        secret = await self._store.create(record)
        log.info("API key %s created by %s", record.name, access.caller.name)
        return record, secret

    async def list(self, access: Access) -> list[KeyRecord]:
        self._check(access)
        return await self._store.records()

    async def revoke(self, access: Access, name: str) -> KeyRecord:
        self._check(access)
        record = await self._store.revoke(name)
        self._on_revoke()
        log.info("API key %s revoked by %s", name, access.caller.name)
        return record
