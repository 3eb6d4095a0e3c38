"""Drives a running swarm with N concurrent greedy streams and measures what its clients see."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

from swarm.client import AsyncSwarmClient, SwarmCallError, SwarmClient
from swarm.launch.local_swarm import wait_until
from swarm.shared.types import TextPiece


@dataclass(frozen=True)
class StreamTrace:
    sent: float
    token_times: list[float]  # one entry per received token

    @property
    def first_token_s(self) -> float:
        return self.token_times[0] - self.sent

    @property
    def tokens_per_s(self) -> float:
        span = self.token_times[-1] - self.token_times[0]
        return (len(self.token_times) - 1) / span if span > 0 else 0.0


@dataclass(frozen=True)
class SwarmRun:
    streams: int
    decode_tokens_per_s: float  # aggregate, while every stream is decoding
    per_stream_tokens_per_s: float  # median over streams
    first_token_p50_s: float
    first_token_p95_s: float


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def aggregate_decode_rate(traces: list[StreamTrace]) -> float:
    """Tokens per second over the window in which all streams were past their first token."""
    start = max(t.token_times[0] for t in traces)
    end = min(t.token_times[-1] for t in traces)
    if end <= start:  # streams barely overlapped: fall back to the whole span
        start = min(t.token_times[0] for t in traces)
        end = max(t.token_times[-1] for t in traces)
        return sum(len(t.token_times) - 1 for t in traces) / (end - start)
    counted = sum(1 for t in traces for stamp in t.token_times if start < stamp <= end)
    return counted / (end - start)


async def _one_stream(client: AsyncSwarmClient, prompt: str, max_tokens: int, model: str) -> StreamTrace:
    sent = time.perf_counter()
    stamps: list[float] = []
    async for event in client.stream(prompt, model=model, max_tokens=max_tokens, temperature=0.0):
        if isinstance(event, TextPiece):
            now = time.perf_counter()
            stamps.extend([now] * max(1, len(event.token_ids)))
    return StreamTrace(sent, stamps)


async def measure_swarm(address: str, prompts: list[str], max_tokens: int, model: str = "") -> SwarmRun:
    """model: the name the workers serve (empty: the coordinator's default)."""
    async with AsyncSwarmClient(address, retries=0) as client:
        # Connected first, as a long-lived client is: first tokens then time the swarm, not a TCP and HTTP/2 handshake.
        await client.status()
        traces = await asyncio.gather(*(_one_stream(client, p, max_tokens, model) for p in prompts))
    firsts = [t.first_token_s for t in traces]
    return SwarmRun(
        streams=len(prompts),
        decode_tokens_per_s=aggregate_decode_rate(traces),
        per_stream_tokens_per_s=statistics.median(t.tokens_per_s for t in traces),
        first_token_p50_s=percentile(firsts, 0.5),
        first_token_p95_s=percentile(firsts, 0.95),
    )


def wait_for_a_worker(address: str, timeout_s: float = 120.0, count: int = 1) -> None:
    """Until the coordinator at address reports `count` workers up: a benchmark's swarm is ready."""

    def workers_up() -> bool:
        try:
            with SwarmClient(address, retries=0) as client:
                return sum(w.up for w in client.status().workers) >= count
        except SwarmCallError:
            return False  # the coordinator is still starting

    wait_until(workers_up, timeout_s, "the benchmark worker" if count == 1 else f"{count} benchmark workers")
