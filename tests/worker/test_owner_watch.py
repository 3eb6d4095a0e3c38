"""OwnerWatch on scripted /proc readings: it hands work back once when the owner gets busy and serves again after."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from swarm.launch.local_swarm import wait_until
from swarm.worker.owner_backoff import BackoffPolicy, Phase
from swarm.worker.owner_load import LoadReading, OwnerThresholds
from swarm.worker.owner_watch import OwnerWatch

INTERVAL_S = 0.01


def readings(shares: list[float]) -> Iterator[LoadReading]:
    """Readings INTERVAL_S apart in which others take `share` of one core, then a quiet core forever."""
    busy = 0.0
    for index in range(10_000):
        share = shares[index] if index < len(shares) else 0.0
        busy += share * INTERVAL_S
        yield LoadReading(index * INTERVAL_S, 1, busy, 0.0, 0.8, 0.0)


def test_the_watch_hands_work_back_once_and_tells_of_each_change() -> None:
    script = readings([0.0] * 3 + [1.0] * 20)
    watch = OwnerWatch(OwnerThresholds(), BackoffPolicy(quiet_s=0.05), read=lambda: next(script), interval_s=0.001)
    handed_back: list[Phase] = []
    phases: list[Phase] = []

    def hand_back() -> int:
        handed_back.append(watch.state.phase)
        return 2

    async def watched() -> None:
        async with watch.watching(hand_back, lambda: phases.append(watch.state.phase)):
            while len(phases) < 3:
                await asyncio.sleep(0.001)

    asyncio.run(asyncio.wait_for(watched(), 10))
    assert phases == [Phase.BACKING_OFF, Phase.AWAY, Phase.SERVING]
    assert handed_back == [Phase.AWAY]  # once, and only after new work stopped
    assert watch.away() == ""


def test_away_says_why() -> None:
    script = readings([1.0] * 100)
    watch = OwnerWatch(OwnerThresholds(), BackoffPolicy(), read=lambda: next(script), interval_s=0.001)

    async def watched() -> None:
        async with watch.watching(lambda: 0, lambda: None):
            await asyncio.to_thread(wait_until, lambda: watch.state.phase is Phase.AWAY, 5, "away")

    asyncio.run(watched())
    assert watch.away() == "away: its owner is busy"


def test_away_for_memory_it_frees_its_model_once_and_loads_it_before_it_serves_again() -> None:
    memory = [0.5] * 3 + [0.05] * 20  # then plenty
    script = (
        LoadReading(i * INTERVAL_S, 1, 0.0, 0.0, memory[i] if i < len(memory) else 0.5, 0.0) for i in range(10_000)
    )
    watch = OwnerWatch(OwnerThresholds(), BackoffPolicy(quiet_s=0.05), read=lambda: next(script), interval_s=0.001)
    events: list[str] = []

    async def set_loaded(loaded: bool) -> None:
        events.append("load" if loaded else "free")

    async def watched() -> None:
        async with watch.watching(lambda: 0, lambda: events.append(watch.away() or "serving"), set_loaded):
            while "serving" not in events:
                await asyncio.sleep(0.001)

    asyncio.run(asyncio.wait_for(watched(), 10))
    assert events == [
        "backing off: memory is short",
        "away: memory is short",
        "free",
        "away: memory is short; its model unloaded",
        "load",  # before the coordinator hears it serves
        "serving",
    ]


def test_memory_that_would_be_short_again_once_the_model_is_back_keeps_it_away() -> None:
    # The owner's programs leave 17% of RAM; the model takes 10% of it: loaded, 7% is free (short, under 10%).
    ticks, model_in_memory = iter(range(1_000_000)), [True]

    def read() -> LoadReading:
        return LoadReading(next(ticks) * INTERVAL_S, 1, 0.0, 0.0, 0.07 if model_in_memory[0] else 0.17, 0.0)

    watch = OwnerWatch(OwnerThresholds(), BackoffPolicy(quiet_s=0.02), read=read, interval_s=0.001)
    events: list[str] = []

    async def set_loaded(loaded: bool) -> None:
        model_in_memory[0] = loaded
        events.append("load" if loaded else "free")

    async def watched() -> None:
        async with watch.watching(lambda: 0, lambda: None, set_loaded):
            await asyncio.sleep(0.5)  # hundreds of samples, many quiet periods long

    asyncio.run(watched())
    assert events == ["free"]  # 17% free would pass, but not with the model's 10% back: it stays away
    assert watch.away() == "away: memory is short; its model unloaded"


def test_a_light_load_takes_threads_away_at_once_and_gives_them_back_after_the_cores_stay_free() -> None:
    # Eight cores; the owner's build takes two of them for a while, under --owner-cpu: the worker keeps serving.
    shares = [0.0] * 3 + [0.25] * 30
    busy, ticks = [0.0], iter(range(1_000_000))

    def read() -> LoadReading:
        tick = next(ticks)
        busy[0] += (shares[tick] if tick < len(shares) else 0.0) * 8 * INTERVAL_S
        return LoadReading(tick * INTERVAL_S, 8, busy[0], 0.0, 0.8, 0.0)

    policy = BackoffPolicy(more_threads_after_s=0.05)
    watch = OwnerWatch(OwnerThresholds(), policy, read=read, interval_s=0.001, most_threads=8)
    threads: list[int] = []
    phases: list[Phase] = []

    async def set_threads(count: int) -> None:
        threads.append(count)

    async def watched() -> None:
        async with watch.watching(lambda: 0, lambda: phases.append(watch.state.phase), set_threads=set_threads):
            while threads[-1:] != [8]:
                await asyncio.sleep(0.001)

    asyncio.run(asyncio.wait_for(watched(), 10))
    assert threads == [6, 8]  # fewer at the first light sample, all again once the build left them free
    assert phases == []  # never backed off: the load stayed under --owner-cpu
