"""Caller: who is calling, resolved once per call from its API key, and where a call's handler finds it."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from swarm.coordinator.tenancy.key_record import KeyRecord

INTERACTIVE = 0  # queue class of interactive calls (the default)
BATCH = 1  # queue class of batch work


@dataclass(frozen=True)
class Caller:
    """Who is calling: resolved once per call from its API key."""

    name: str  # the key's name; for --api-key/file/env keys "key-" + first 8 hex of its owner digest; "" without keys
    owner: str  # request_identity.owner_of_key(key): the namespace of its requests ("" without keys)
    admin: bool  # --api-key/file/env keys are admin keys (today's behaviour kept); created keys only with --admin
    priority: int  # queue class: 0 interactive (default), 1 batch, or a number the operator gives
    weight: float  # share within its class (default 1.0)


# A coordinator without API keys: everybody may do everything, in one shared namespace (today's behaviour).
OPEN_CALLER = Caller(name="", owner="", admin=True, priority=INTERACTIVE, weight=1.0)


@dataclass(frozen=True)
class Access:
    """A call's caller and, for a key created at run time, its record (the limits and models it is held to)."""

    caller: Caller
    record: KeyRecord | None = None  # None: a static key or no keys, held to no per-key limit
    digest: str = ""  # the created key's digest: where its record and limits live in Redis

    @property
    def limited(self) -> bool:
        return self.record is not None and self.record.limited


OPEN_ACCESS = Access(OPEN_CALLER)

# Set by the gRPC interceptor around each call's handler (auth.interceptor); the default is a
# coordinator without keys, where no interceptor runs.
_current: contextvars.ContextVar[Access] = contextvars.ContextVar("swarm_caller_access", default=OPEN_ACCESS)


def current_access() -> Access:
    """The access of the gRPC call this code runs for."""
    return _current.get()


def set_current_access(access: Access) -> contextvars.Token[Access]:
    return _current.set(access)
