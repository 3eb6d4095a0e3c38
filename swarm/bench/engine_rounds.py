"""One round of requests through a BatchEngine (no network), timed per stream: the engine benches' common measure.

Each stream's rate is its tokens after the first over its own time from first token to finish; a round's rate
is their sum, so streams ending at different times (answers of different lengths) do not count the tail where
fewer of them run as slowness.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from swarm.engine.batch_engine import BatchEngine
from swarm.shared.types import Finished, GenerationEvent, GenerationRequest


@dataclass(frozen=True)
class Round:
    tokens: int  # generated after each stream's first token
    seconds: float  # from the first stream's first token to the last one's finish
    rate: float  # the sum of each stream's own decode rate
    stream_tokens: tuple[tuple[int, ...], ...] = ()  # each stream's token ids, in request order
    finishes: tuple[Finished, ...] = ()  # each stream's end, in request order


def run_requests(engine: BatchEngine, requests: Sequence[GenerationRequest], timeout_s: float = 600) -> Round:
    """Submits every request at once and times each stream until all finish (timeout_s: the longest wait for
    any one event)."""
    inbox: queue.SimpleQueue[tuple[int, GenerationEvent | Exception, float]] = queue.SimpleQueue()
    for stream, request in enumerate(requests):
        engine.submit(request, _stamped(inbox, stream))
    firsts: dict[int, float] = {}
    rates: list[float] = []
    stream_tokens: list[list[int]] = [[] for _ in requests]
    finishes: dict[int, Finished] = {}
    tokens = 0
    last = 0.0
    while len(rates) < len(requests):
        stream, event, stamp = inbox.get(timeout=timeout_s)
        if isinstance(event, Exception):
            raise event
        if isinstance(event, Finished):
            after_first = max(event.completion_tokens - 1, 0)
            tokens += after_first
            last = max(last, stamp)
            rates.append(after_first / (stamp - firsts[stream]) if stamp > firsts.get(stream, stamp) else 0.0)
            finishes[stream] = event
        else:
            firsts.setdefault(stream, stamp)
            stream_tokens[stream] += event.token_ids
    return Round(
        tokens,
        last - min(firsts.values(), default=last),
        sum(rates),
        tuple(tuple(t) for t in stream_tokens),
        tuple(finishes[i] for i in range(len(requests))),
    )


def _stamped(
    inbox: queue.SimpleQueue[tuple[int, GenerationEvent | Exception, float]], stream: int
) -> Callable[[GenerationEvent | Exception], None]:
    def emit(event: GenerationEvent | Exception) -> None:
        inbox.put((stream, event, time.perf_counter()))

    return emit
