"""KeyAdmission: holds each new request of a created key to its model list and limits, and settles it when it ends.

Only requests a key submits are held to its limits: a retry that attaches to a request the
swarm already has (a failover's resume included) is not charged again, and a batch job's lines,
though queued and accounted as its key's batch work, are not (batch.submitter).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Iterable

from swarm.coordinator.tenancy.caller import Access
from swarm.coordinator.tenancy.key_limits import STREAM_LEASE_MS, KeyLimits, Limits
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.types import Finished, GenerationEvent, GenerationRequest

log = logging.getLogger(__name__)

RENEW_EVERY_S = STREAM_LEASE_MS / 3000  # three renewals per lease: one lost round trip frees no slot

_LIMIT_WORDS = {"requests": "requests per minute", "tokens": "tokens per minute", "streams": "concurrent streams"}


def _now_ms() -> int:
    return int(time.time() * 1000)


def check_model(access: Access, model: str) -> None:
    """PERMISSION_DENIED, naming the model, when the caller's key is not allowed it."""
    record = access.record
    if record is not None and not record.allows_model(model):
        raise SwarmError(
            ErrorCode.PERMISSION_DENIED,
            f"model: API key {record.name!r} may not use model {model!r} (allowed: {', '.join(record.models)})",
        )


def check_batch_models(access: Access, job_model: str, models: Iterable[str]) -> None:
    """PERMISSION_DENIED naming the first batch line model (its own, else the job's) the caller's key may not use.

    A key held to a model list must name the model: the swarm's default may change before a line runs."""
    record = access.record
    if record is None or not record.models:
        return
    for number, model in enumerate(models, start=1):
        chosen = model or job_model
        if not chosen:
            raise SwarmError(
                ErrorCode.PERMISSION_DENIED,
                f"model: line {number} names no model, and API key {record.name!r} may use only "
                f"{', '.join(record.models)}: name one for the job or the line",
            )
        check_model(access, chosen)


class Ticket:
    """One admitted request's claim on its key's limits: what it reserved and, once it ends, what it used."""

    def __init__(self, admission: KeyAdmission, digest: str, limits: Limits, stream: str, reserved: int) -> None:
        self._admission = admission
        self._digest = digest
        self._limits = limits
        self._stream = stream
        self._reserved = reserved
        self._used = 0
        self._finished = False

    def observe(self, event: GenerationEvent) -> None:
        if isinstance(event, Finished):
            self._used = event.prompt_tokens + event.completion_tokens
            self._finished = True
        elif not self._finished:
            self._used += len(event.token_ids)

    async def close(self) -> None:
        """Charges what the request used instead of what it reserved, and frees its stream slot."""
        self._admission.forget(self._digest, self._stream)
        try:
            await self._admission.limits.settle(
                self._digest, self._limits, self._used - self._reserved, self._stream, _now_ms()
            )
        except Exception as exc:  # Redis failing: the reservation stands, the slot's lease lapses
            log.warning("could not settle a request's tokens and stream slot: %s", exc)


class KeyAdmission:
    """Admits requests of limited keys; owns the renewal of the stream leases this coordinator holds."""

    def __init__(self, limits: KeyLimits) -> None:
        self.limits = limits
        self._open: dict[str, set[str]] = {}  # key digest -> stream members this coordinator relays

    async def admit(self, access: Access, request: GenerationRequest) -> Ticket | None:
        """A ticket to close when the request ends; None for a static key or one without limits.

        Every created key's request passes the admission script, which reads the key's record in
        Redis: UNAUTHENTICATED once it is revoked or expired (whatever the resolver's cache holds),
        RESOURCE_EXHAUSTED over a limit."""
        record = access.record
        if record is None:
            return None
        limits = Limits(record.requests_per_minute, record.tokens_per_minute, record.max_streams)
        stream = f"{request.request_id}#{secrets.token_hex(4)}"
        refusal = await self.limits.admit(access.digest, limits, request.max_tokens, stream, _now_ms())
        if refusal is not None and refusal.limit in ("revoked", "expired"):
            why = "was revoked" if refusal.limit == "revoked" else "has expired"
            raise SwarmError(ErrorCode.UNAUTHENTICATED, f"API key {record.name!r} {why}")
        if refusal is not None:
            allowed = {
                "requests": limits.requests_per_minute,
                "tokens": limits.tokens_per_minute,
                "streams": limits.max_streams,
            }[refusal.limit]
            raise SwarmError(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"API key {record.name!r} is over its limit of {allowed} {_LIMIT_WORDS[refusal.limit]}; "
                f"retry in {refusal.retry_after_s:g} s",
                retry_after_s=refusal.retry_after_s,
            )
        if not record.limited:
            return None
        if limits.max_streams:
            self._open.setdefault(access.digest, set()).add(stream)
        return Ticket(self, access.digest, limits, stream, request.max_tokens)

    def forget(self, digest: str, stream: str) -> None:
        streams = self._open.get(digest)
        if streams is not None:
            streams.discard(stream)
            if not streams:
                del self._open[digest]

    async def run(self) -> None:
        """Renews the leases of the streams this coordinator relays until cancelled."""
        while True:
            await asyncio.sleep(RENEW_EVERY_S)
            try:
                await self.limits.renew({d: sorted(s) for d, s in self._open.items()}, _now_ms())
            except Exception as exc:  # Redis failing: the next round tries again, well within a lease
                log.warning("could not renew stream leases: %s", exc)
