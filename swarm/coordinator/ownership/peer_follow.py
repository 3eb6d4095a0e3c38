"""Following a request another coordinator owns: its pieces read from Redis as they are saved, never run twice.

A client may reach any coordinator (its own one died, or a load balancer sent it elsewhere). While
a live peer holds the request's lease, this coordinator only reads the piece journal, marking the
request watched so its owner keeps it running (and keeps its result) for this client. Once the lease
lapses (the owner died), the request is taken over here and followed locally from the tokens this
client already has.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from swarm.coordinator.redis_keys import RequestState
from swarm.coordinator.request_store import RequestStore
from swarm.shared.cancellation import stop_if_cancelled
from swarm.shared.errors import ErrorCode, SwarmError
from swarm.shared.pieces import coalesce
from swarm.shared.types import GenerationEvent, TextPiece

# How often a followed request's journal is read: the added latency of following a peer's run.
PEER_POLL_S = 0.05

# (request id, whether its lease lapsed, tokens this client has) -> its events here from then, if this
# coordinator has it or took it over now; None while a live peer owns it.
Adopt = Callable[[str, bool, int], Awaitable[AsyncIterator[GenerationEvent] | None]]


async def follow_peer(
    store: RequestStore, request_id: str, skip_tokens: int, adopt: Adopt, poll_s: float = PEER_POLL_S
) -> AsyncIterator[GenerationEvent]:
    """The request's events after the first skip_tokens tokens, while another coordinator runs it."""
    passed_pieces = 0  # journal pieces sent on to the client, or skipped
    passed_tokens = 0
    lapsed = False
    while True:
        local = await adopt(request_id, lapsed, max(skip_tokens, passed_tokens))
        if local is not None:
            async for event in local:
                yield event
            return
        stored = await store.load(request_id, watching=True)
        if stored is None:
            raise SwarmError(
                ErrorCode.CANCELLED, "the request ended at another coordinator (delivered there or cancelled)"
            )
        pieces = stored.result.pieces if stored.result is not None else stored.sent
        fresh = pieces[passed_pieces:]
        passed_pieces = len(pieces)
        events: list[GenerationEvent] = [*fresh, *([stored.result.finished] if stored.result is not None else [])]
        skip = max(0, skip_tokens - passed_tokens)
        passed_tokens += sum(len(p.token_ids) for p in fresh if isinstance(p, TextPiece))
        for event in coalesce(events, skip):
            yield event
        if stored.result is not None:
            await store.delivered_stored(request_id)
            return
        if stored.state is RequestState.FAILED:
            raise SwarmError(ErrorCode.UNAVAILABLE, "no worker could take the request; retry it to resume")
        lapsed = not stored.owner
        stop_if_cancelled()
        if not lapsed:
            await asyncio.sleep(poll_s)
