"""Submitter: the key that submitted a batch job, kept with the job so its lines run as that key's work.

A line is queued as the key's batch-class work (its tenant and weight in the fair queue) and its
tokens are accounted under the key's name, as its interactive requests are. A created key's
digest is kept too: once that key is revoked or expires, its lines stop (batch.runner; those
running are ended by tenancy.key_watch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from redis.typing import EncodableT, FieldT

from swarm.coordinator.tenancy.caller import Access, Caller

SUBMITTER_FIELDS = ("owner", "tenant", "priority", "weight", "key")  # of a job's hash in Redis


@dataclass(frozen=True)
class Submitter:
    owner: str = ""  # the key's request namespace (Caller.owner): who may see the job
    tenant: str = ""  # the key's name (Caller.name); "" on a coordinator without keys
    priority: int = 0  # the key's queue class; lines are queued in the batch class at least
    weight: float = 1.0
    key_digest: str = ""  # a created key's digest (Access.digest); "" for a static key or none

    @classmethod
    def of(cls, access: Access) -> Submitter:
        caller = access.caller
        return cls(caller.owner, caller.name, caller.priority, caller.weight, access.digest)

    def to_fields(self) -> dict[FieldT, EncodableT]:
        """The SUBMITTER_FIELDS of the job's hash in Redis."""
        values = (self.owner, self.tenant, self.priority, repr(self.weight), self.key_digest)
        return dict(zip(SUBMITTER_FIELDS, values, strict=True))

    @classmethod
    def from_fields(cls, data: Mapping[str, str | None]) -> Submitter:
        """From the job's hash; a job stored before submitters were kept runs as no key's, as it did."""
        return cls(
            owner=data.get("owner") or "",
            tenant=data.get("tenant") or "",
            priority=int(data.get("priority") or 0),
            weight=float(data.get("weight") or 1.0),
            key_digest=data.get("key") or "",
        )

    def line_access(self) -> Access:
        """What a line runs with: the key's name, class and weight, but no record: a line is not held to
        the key's per-minute or stream limits, which would refuse lines the job was accepted with; the
        batch class and the key's fair share pace them."""
        caller = Caller(name=self.tenant, owner=self.owner, admin=False, priority=self.priority, weight=self.weight)
        return Access(caller)


NO_SUBMITTER = Submitter()  # a coordinator without keys: every job in one shared namespace
