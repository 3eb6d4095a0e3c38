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
from dataclasses import dataclass
from multiprocessing.synchronize import Event as ProcessEvent

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


def p95(values: list[float]) -> float:
    """The 95th percentile by the nearest-rank method."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


async def quiet_first_tokens(load: FloodLoad, prompts: list[str]) -> list[float]:
    """The quiet tenant's requests, one at a time: each one's seconds to its first piece of text."""
    times: list[float] = []
    async with AsyncSwarmClient(load.address, api_key=load.quiet_key, retries=0) as client:
        for i in range(load.quiet_requests):
            sent = time.perf_counter()
            first: float | None = None
            async for event in client.stream(prompts[i % len(prompts)], max_tokens=load.quiet_max_tokens):
                if first is None and isinstance(event, TextPiece) and event.token_ids:
                    first = time.perf_counter() - sent
            times.append(first if first is not None else time.perf_counter() - sent)
            await asyncio.sleep(load.quiet_gap_s)
    return times


async def _flood_one(client: AsyncSwarmClient, prompt: str, max_tokens: int, stop: asyncio.Event) -> None:
    while not stop.is_set():
        async for _ in client.stream(prompt, max_tokens=max_tokens):
            pass


async def flood_until(load: FloodLoad, prompts: list[str], stop: asyncio.Event, started: asyncio.Event) -> int:
    """Keeps flood_outstanding requests of the flooding tenant open until stop; returns how many connections."""
    clients = [
        AsyncSwarmClient(load.address, api_key=load.flood_key, retries=0)
        for _ in range(min(FLOOD_CONNECTIONS, load.flood_outstanding))
    ]
    tasks = [
        asyncio.create_task(
            _flood_one(clients[i % len(clients)], prompts[i % len(prompts)], load.flood_max_tokens, stop)
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


async def alone_and_flooded(load: FloodLoad, prompts: list[str], settle_s: float) -> tuple[list[float], list[float]]:
    """One pair of arms, alone first: the quiet tenant's first-token times alone and under the flood."""
    alone = await quiet_under_flood(load, prompts, flood=False, settle_s=0.0)
    return alone, await quiet_under_flood(load, prompts, flood=True, settle_s=settle_s)


def flood_process(load: FloodLoad, prompts: list[str], started: ProcessEvent, stop: ProcessEvent) -> None:
    """A flood's process: floods until stop is set."""

    async def flood() -> None:
        stopping, running = asyncio.Event(), asyncio.Event()
        flooding = asyncio.create_task(flood_until(load, prompts, stopping, running))
        await running.wait()
        started.set()
        await asyncio.to_thread(stop.wait)
        stopping.set()
        await flooding

    asyncio.run(flood())


async def quiet_under_flood(load: FloodLoad, prompts: list[str], flood: bool, settle_s: float) -> list[float]:
    """The quiet tenant's first-token times, with the flood running (after settle_s to fill the queue) or not."""
    if not flood:
        return await quiet_first_tokens(load, prompts)
    spawn = multiprocessing.get_context("spawn")
    started, stop = spawn.Event(), spawn.Event()
    flooding = spawn.Process(target=flood_process, args=(load, prompts, started, stop), name="flood", daemon=True)
    flooding.start()
    try:
        if not await asyncio.to_thread(started.wait, FLOOD_START_S):
            raise RuntimeError(f"the flood's process did not start within {FLOOD_START_S:.0f} s")
        await asyncio.sleep(settle_s)
        return await quiet_first_tokens(load, prompts)
    finally:
        stop.set()
        await asyncio.to_thread(flooding.join, FLOOD_STOP_S)
        if flooding.is_alive():
            flooding.kill()
            await asyncio.to_thread(flooding.join)
