"""PieceJournal: every piece a client may receive is saved in Redis first, many streams per round trip.

A restarted coordinator resumes a running request after exactly the pieces saved, so a
piece must be saved before any follower gets it. Saving one piece per round trip would
cost a relay more than the piece itself, so pieces arriving together from every stream
go out as one script call (one command to pack and one reply to parse, however many pieces).
Each is stored under its place in the stream: writing it twice (a retry after a lost reply)
changes nothing. A piece is written only while the request still names this coordinator as
its owner: one that lost its lease (Redis away for longer than the lease) and was taken over
must not write into the new owner's journal (PieceRefused). Under Sentinel a batch also waits
until a replica holds it, so no client gets a piece that a promotion could lose.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.shared.redis_connection import NO_REPLICAS, DurableWrites
from swarm.shared.types import TextPiece, TokenLogprob

log = logging.getLogger(__name__)

_Entry = tuple[str, int, str, "asyncio.Future[None]"]  # request id, piece index, piece as JSON, saved

# KEYS: per request, its pieces hash then its request hash. ARGV: the pieces' TTL, the owner, then per
# piece: its request's number (1, 2, ... in KEYS order), index, JSON. Returns the numbers of the requests
# whose pieces were refused: the request no longer names this owner.
_SAVE = """
local refused = {}
local owned = {}
for j = 1, #KEYS / 2 do
  owned[j] = redis.call('HGET', KEYS[2 * j], 'coordinator') == ARGV[2]
  if owned[j] then
    redis.call('EXPIRE', KEYS[2 * j - 1], ARGV[1])
  else
    refused[#refused + 1] = j
  end
end
for i = 3, #ARGV, 3 do
  local j = tonumber(ARGV[i])
  if owned[j] then
    redis.call('HSET', KEYS[2 * j - 1], ARGV[i + 1], ARGV[i + 2])
  end
end
return refused
"""


class PieceRefused(Exception):
    """The request is no longer this coordinator's (another took it over): its pieces are not saved."""


class PieceJournal:
    def __init__(self, redis: Redis, owner: str, durable: DurableWrites = NO_REPLICAS) -> None:
        self._owner = owner
        self._durable = durable
        self._save = redis.register_script(_SAVE)
        self._pending: list[_Entry] = []
        self._writer: asyncio.Task[None] | None = None

    async def save(self, request_id: str, index: int, piece: TextPiece) -> None:
        """Returns once the stream's piece number `index` is in Redis; raises its batch's Redis error, or
        PieceRefused."""
        saved: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((request_id, index, piece_json(piece), saved))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write(), name="piece-journal")
        await saved

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.wait([self._writer])
        for *_, saved in self._pending:
            saved.cancel()
        self._pending.clear()

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            places: dict[str, int] = {}
            args: list[str | int] = [keys.RESULT_TTL_S, self._owner]  # a piece saved as its request left expires
            for request_id, index, value, _ in batch:
                place = places.setdefault(request_id, len(places) + 1)
                args += [place, index, value]
            hashes = [
                k for request_id in places for k in (keys.request_pieces_key(request_id), keys.request_key(request_id))
            ]
            try:
                refused = {int(j) for j in await self._save(keys=hashes, args=args)}
                await self._durable.confirm()
            except asyncio.CancelledError:
                for *_, saved in batch:
                    saved.cancel()
                raise
            except Exception as exc:  # each relay decides what a failed save means for its request
                for *_, saved in batch:
                    if not saved.done():
                        saved.set_exception(exc)
            else:
                for request_id, _, _, saved in batch:
                    if saved.done():
                        continue
                    if places[request_id] in refused:
                        saved.set_exception(PieceRefused(f"{request_id} is another coordinator's now"))
                    else:
                        saved.set_result(None)


def piece_json(piece: TextPiece) -> str:
    return json.dumps(piece_fields(piece))


def piece_fields(piece: TextPiece) -> list[Any]:
    """[text, token ids] and, when it carries log-probabilities, [token, logprob, bytes as hex, top] of each."""
    fields: list[Any] = [piece.text, list(piece.token_ids)]
    if piece.logprobs:
        fields.append([_logprob_fields(lp) for lp in piece.logprobs])
    return fields


def piece_from_fields(fields: list[Any]) -> TextPiece:
    text, ids, *logprobs = fields
    saved = logprobs[0] if logprobs else []
    return TextPiece(str(text), tuple(int(i) for i in ids), tuple(_logprob_from_fields(lp) for lp in saved))


def _logprob_fields(logprob: TokenLogprob) -> list[Any]:
    return [logprob.token, logprob.logprob, logprob.text.hex(), [_logprob_fields(t) for t in logprob.top]]


def _logprob_from_fields(fields: list[Any]) -> TokenLogprob:
    token, logprob, text, top = fields
    return TokenLogprob(int(token), float(logprob), bytes.fromhex(text), tuple(_logprob_from_fields(t) for t in top))


def pieces_in_order(saved: dict[str, str]) -> tuple[TextPiece, ...]:
    """The saved pieces (index -> JSON) from the first on, up to the first one missing."""
    pieces: list[TextPiece] = []
    while (value := saved.get(str(len(pieces)))) is not None:
        pieces.append(piece_from_fields(json.loads(value)))
    return tuple(pieces)
