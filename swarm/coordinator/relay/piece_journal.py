"""PieceJournal: every piece a client may receive is saved in Redis first, many streams per round trip.

A restarted coordinator resumes a running request after exactly the pieces saved, so a
piece must be saved before any follower gets it. Saving one piece per round trip would
cost a relay more than the piece itself, so pieces arriving together from every stream
go out as one script call (one command to pack and one reply to parse, however many pieces).
Each is stored under its place in the stream: writing it twice (a retry after a lost reply)
changes nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging

from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.shared.types import TextPiece

log = logging.getLogger(__name__)

_Entry = tuple[str, int, str, "asyncio.Future[None]"]  # request id, piece index, piece as JSON, saved

# KEYS: the pieces hashes written. ARGV: their TTL, then per piece: its hash's place in KEYS, index, JSON.
_SAVE = """
for i = 2, #ARGV, 3 do
  redis.call('HSET', KEYS[tonumber(ARGV[i])], ARGV[i + 1], ARGV[i + 2])
end
for i = 1, #KEYS do
  redis.call('EXPIRE', KEYS[i], ARGV[1])
end
return #KEYS
"""


class PieceJournal:
    def __init__(self, redis: Redis) -> None:
        self._save = redis.register_script(_SAVE)
        self._pending: list[_Entry] = []
        self._writer: asyncio.Task[None] | None = None

    async def save(self, request_id: str, index: int, piece: TextPiece) -> None:
        """Returns once the stream's piece number `index` is in Redis; raises its batch's Redis error."""
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
            args: list[str | int] = [keys.RESULT_TTL_S]  # a piece saved just after its request left expires
            for request_id, index, value, _ in batch:
                place = places.setdefault(keys.request_pieces_key(request_id), len(places) + 1)
                args += [place, index, value]
            try:
                await self._save(keys=list(places), args=args)
            except asyncio.CancelledError:
                for *_, saved in batch:
                    saved.cancel()
                raise
            except Exception as exc:  # each relay decides what a failed save means for its request
                for *_, saved in batch:
                    if not saved.done():
                        saved.set_exception(exc)
            else:
                for *_, saved in batch:
                    if not saved.done():
                        saved.set_result(None)


def piece_json(piece: TextPiece) -> str:
    return json.dumps([piece.text, list(piece.token_ids)])


def pieces_in_order(saved: dict[str, str]) -> tuple[TextPiece, ...]:
    """The saved pieces (index -> JSON) from the first on, up to the first one missing."""
    pieces: list[TextPiece] = []
    while (value := saved.get(str(len(pieces)))) is not None:
        text, ids = json.loads(value)
        pieces.append(TextPiece(str(text), tuple(int(i) for i in ids)))
    return tuple(pieces)
