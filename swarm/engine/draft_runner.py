"""DraftRunner: a draft PC's model on its own thread, running greedily ahead of every sequence it is told of.

Each sequence of each target stream has a llama.cpp sequence id (the least recently told one loses
its id when all are taken) and a DraftLine. Every step decodes, in one llama_decode, whatever each
line needs to make its next guess; each new guess goes back at once with the guesses before it, so
a target may take them while the draft works on the next.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from swarm.engine.draft_line import DraftLine
from swarm.engine.llama_adapter import LlamaContext, LlamaModel, TokenBatch
from swarm.engine.speculation.draft_mailbox import DraftProposal

log = logging.getLogger(__name__)

# Called on the runner's thread with (sequence, proposal): must not block.
AnswerFn = Callable[[str, DraftProposal], None]
Key = tuple[int, str]  # (stream, sequence)
# The answer to news of a sequence the draft does not hold (any more): send its whole context again.
LOST = DraftProposal(0, ())


@dataclass(frozen=True)
class _Told:
    key: Key
    start: int
    tokens: tuple[int, ...]
    answer: AnswerFn


@dataclass(frozen=True)
class _Ended:
    stream: int
    sequence: str  # "": every sequence of the stream


@dataclass
class _Entry:
    line: DraftLine
    seq_id: int
    answer: AnswerFn


class DraftRunner:
    def __init__(self, model: LlamaModel, slots: int, context_per_slot: int, threads: int, lookahead: int) -> None:
        self._context = LlamaContext(model, slots, context_per_slot, max(512, slots), threads)
        self._batch = TokenBatch(self._context.batch_size)
        self._room = self._context.context_per_slot
        self._lookahead = lookahead
        self._free = list(range(slots))
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()  # least recently told first
        self._inbox: queue.SimpleQueue[_Told | _Ended | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="swarm-draft", daemon=True)
        self.guesses = 0  # tokens guessed since start

    # ------------------------------------------------------------ any thread

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._inbox.put(None)
            self._thread.join()
        self._batch.close()
        self._context.close()

    def tell(self, stream: int, sequence: str, start: int, tokens: tuple[int, ...], answer: AnswerFn) -> None:
        self._inbox.put(_Told((stream, sequence), start, tokens, answer))

    def end(self, stream: int, sequence: str = "") -> None:
        self._inbox.put(_Ended(stream, sequence))

    # ------------------------------------------------------------ its thread

    def _loop(self) -> None:
        while True:
            items: list[_Told | _Ended | None] = []
            try:  # idle, it waits for news; busy, it takes what came and steps
                items.append(self._inbox.get(timeout=0.5) if not self._busy() else self._inbox.get_nowait())
                while True:
                    items.append(self._inbox.get_nowait())
            except queue.Empty:
                pass
            for item in items:
                if item is None:
                    return
                self._apply(item)
            try:
                self._step()
            except Exception:  # a failed decode drops what it held, not the draft PC
                log.exception("draft step failed")
                for key in list(self._entries):
                    self._drop(key)

    def _busy(self) -> bool:
        return any(entry.line.wants(1) for entry in self._entries.values())

    def _apply(self, item: _Told | _Ended) -> None:
        if isinstance(item, _Ended):
            for key in [k for k in self._entries if k[0] == item.stream and item.sequence in ("", k[1])]:
                self._drop(key)
            return
        entry = self._entries.get(item.key)
        if entry is None:
            if item.start != 0:  # it never had this sequence, or gave its cells to another: it asks for all of it
                item.answer(item.key[1], LOST)
                return
            if not self._free:
                self._drop(next(iter(self._entries)))
            entry = _Entry(DraftLine(self._lookahead, self._room), self._free.pop(), item.answer)
            self._context.forget(entry.seq_id)
            self._entries[item.key] = entry
        self._entries.move_to_end(item.key)
        if not entry.line.tell(item.start, list(item.tokens)):
            self._drop(item.key)
            item.answer(item.key[1], LOST)

    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key)
        self._context.forget(entry.seq_id)
        self._free.append(entry.seq_id)

    def _step(self) -> None:
        batch = self._batch
        batch.clear()
        rows: list[tuple[Key, _Entry, int, int]] = []  # key, entry, tokens decoded, batch index of the last
        for key, entry in self._entries.items():
            tokens = entry.line.wants(batch.capacity - batch.size)
            if not tokens:
                continue
            self._context.forget(entry.seq_id, entry.line.decoded)  # a cut line's old guesses leave the cache
            index = 0
            for k, token in enumerate(tokens):
                index = batch.add(token, entry.line.decoded + k, entry.seq_id, k == len(tokens) - 1)
            rows.append((key, entry, len(tokens), index))
            if batch.size >= batch.capacity:
                break
        if not rows:
            return
        self._context.decode(batch)
        for key, entry, count, index in rows:
            if entry.line.decoded_more(count):
                entry.line.guessed(int(np.argmax(self._context.logits(index))))
                self.guesses += 1
                line = entry.line
                entry.answer(key[1], DraftProposal(len(line.context), tuple(line.guesses)))
