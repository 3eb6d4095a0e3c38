"""The flood-and-quiet load: one tenant keeps many requests running and queued, another sends one at a time.

Measures the quiet tenant's time to first token; fair queuing's benchmark and its end-to-end test
both drive this, the one against a real model, the other against a tiny synthetic one. The flood
runs in a process of its own, as another team's client would: in the measuring process its streams
would hold up the event loop that times the quiet tenant's tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event as ProcessEvent

from opentelemetry.trace import Tracer

from swarm.bench.traced_request import TracedRequest
from swarm.client.async_client import AsyncSwarmClient
from swarm.shared.types import TextPiece

# gRPC connections the flood spreads over, so no single HTTP/2 connection caps its concurrent streams.
FLOOD_CONNECTIONS = 8
FLOOD_START_S = 60.0  # for the flood's process to start and open its streams
FLOOD_STOP_S = 30.0  # for it to cancel them and exit


@dataclass(frozen=True)
class FloodLoad:
    address: str
    flood_key: str
    quiet_key: str
    flood_outstanding: int  # requests the flooding tenant keeps open at once: its running streams plus its queue
    flood_max_tokens: int
    quiet_requests: int
    quiet_max_tokens: int
    quiet_gap_s: float = 0.05  # between the quiet tenant's requests


@dataclass(frozen=True)
class RoundArms:
    """One pair of arms: the quiet tenant's requests alone and flooded, and what the flood got meanwhile."""

    alone: list[TracedRequest]
    flooded: list[TracedRequest]
    flood_tokens_per_s: float  # the flooding tenant's tokens received while the quiet one played its requests


def first_token_seconds(requests: list[TracedRequest]) -> list[float]:
    return [r.first_token_ms / 1000 for r in requests]


def p95(values: list[float]) -> float:
    """The 95th percentile by the nearest-rank method."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


async def quiet_first_tokens(load: FloodLoad, prompts: list[str], tracer: Tracer | None = None) -> list[TracedRequest]:
    """The quiet tenant's requests, one at a time; with a tracer, each in a span of its own that the swarm's join."""
    measured: list[TracedRequest] = []
    async with AsyncSwarmClient(load.address, api_key=load.quiet_key, retries=0) as client:
        for i in range(load.quiet_requests):
            with tracer.start_as_current_span("client.request") if tracer else contextlib.nullcontext() as span:
                sent = time.time_ns()
                first = 0
                async for event in client.stream(prompts[i % len(prompts)], max_tokens=load.quiet_max_tokens):
                    if not first and isinstance(event, TextPiece) and event.token_ids:
                        first = time.time_ns()
            trace_id = format(span.get_span_context().trace_id, "032x") if span is not None else ""
            measured.append(TracedRequest(trace_id, sent, first or time.time_ns()))
            await asyncio.sleep(load.quiet_gap_s)
    return measured


async def _flood_one(
    client: AsyncSwarmClient, prompt: str, max_tokens: int, stop: asyncio.Event, count: Callable[[int], None]
) -> None:
    while not stop.is_set():
        async for event in client.stream(prompt, max_tokens=max_tokens):
            if isinstance(event, TextPiece):
                count(len(event.token_ids))


async def flood_until(
    load: FloodLoad,
    prompts: list[str],
    stop: asyncio.Event,
    started: asyncio.Event,
    count: Callable[[int], None] = lambda _: None,
) -> int:
    """Keeps flood_outstanding requests of the flooding tenant open until stop, telling `count` the tokens each
    piece brings; returns how many connections."""
    clients = [
        AsyncSwarmClient(load.address, api_key=load.flood_key, retries=0)
        for _ in range(min(FLOOD_CONNECTIONS, load.flood_outstanding))
    ]
    tasks = [
        asyncio.create_task(
            _flood_one(clients[i % len(clients)], prompts[i % len(prompts)], load.flood_max_tokens, stop, count)
        )
        for i in range(load.flood_outstanding)
    ]
    started.set()
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for client in clients:
            await client.close()
    return len(clients)


async def alone_and_flooded(
    load: FloodLoad, prompts: list[str], settle_s: float, tracer: Tracer | None = None
) -> RoundArms:
    """One pair of arms, alone first: the quiet tenant's requests alone and under the flood."""
    alone, _ = await quiet_under_flood(load, prompts, flood=False, settle_s=0.0, tracer=tracer)
    flooded, flood_rate = await quiet_under_flood(load, prompts, flood=True, settle_s=settle_s, tracer=tracer)
    return RoundArms(alone, flooded, flood_rate)


def flood_process(
    load: FloodLoad, prompts: list[str], started: ProcessEvent, stop: ProcessEvent, tokens: Synchronized[int]
) -> None:
    """A flood's process: floods until stop is set, adding the tokens it receives to `tokens`."""

    def count(received: int) -> None:
        with tokens.get_lock():
            tokens.value += received

    async def flood() -> None:
        stopping, running = asyncio.Event(), asyncio.Event()
        flooding = asyncio.create_task(flood_until(load, prompts, stopping, running, count))
        await running.wait()
        started.set()
        await asyncio.to_thread(stop.wait)
        stopping.set()
        await flooding

    asyncio.run(flood())


async def quiet_under_flood(
    load: FloodLoad, prompts: list[str], flood: bool, settle_s: float, tracer: Tracer | None = None
) -> tuple[list[TracedRequest], float]:
    """The quiet tenant's requests, with the flood running (after settle_s to fill the queue) or not; and the
    flood's tokens per second meanwhile (0 without one)."""
    if not flood:
        return await quiet_first_tokens(load, prompts, tracer), 0.0
    spawn = multiprocessing.get_context("spawn")
    started, stop, tokens = spawn.Event(), spawn.Event(), spawn.Value("q", 0)
    flooding = spawn.Process(
        target=flood_process, args=(load, prompts, started, stop, tokens), name="flood", daemon=True
    )
    flooding.start()
    try:
        if not await asyncio.to_thread(started.wait, FLOOD_START_S):
            raise RuntimeError(f"the flood's process did not start within {FLOOD_START_S:.0f} s")
        await asyncio.sleep(settle_s)
        began, tokens_before = time.monotonic(), tokens.value
        quiet = await quiet_first_tokens(load, prompts, tracer)
        return quiet, (tokens.value - tokens_before) / (time.monotonic() - began)
    finally:
        stop.set()
        await asyncio.to_thread(flooding.join, FLOOD_STOP_S)
        if flooding.is_alive():
            flooding.kill()
            await asyncio.to_thread(flooding.join)
