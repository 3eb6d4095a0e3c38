"""Demand shared through Redis: a want keeps its first time and expires once no request renews it, uses
are written at most once a second per model, and a fleet merges the record at most once a sync interval
and deletes the wants it finds met."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path

from redis.asyncio import Redis

from swarm.coordinator import redis_keys as keys
from swarm.coordinator.planning.demand_store import DemandRecord, DemandStore
from swarm.coordinator.planning.model_fleet import ModelFleet
from swarm.coordinator.planning.shared_demand import SharedDemand
from swarm.shared.types import WorkerView
from tests.coordinator.planning.test_model_fleet import Clock, fleet_of, join, serving


def test_the_store_keeps_a_wants_first_time_the_latest_use_and_forgets_met_wants(redis_url: str) -> None:
    async def main() -> tuple[DemandRecord, DemandRecord, int]:
        redis = Redis.from_url(redis_url, decode_responses=True)
        try:
            store = DemandStore(redis, want_ttl_s=180)
            await store.want("b", 10.0)
            await store.want("b", 20.0)
            await store.want("c", 30.0)
            await store.used("b", 10.0)
            await store.used("b", 20.0)
            before = await store.read()
            await store.forget_wants(["b"])
            await store.forget_wants([])
            return before, await store.read(), await redis.ttl(keys.MODELS_WANTED)
        finally:
            await redis.aclose()

    before, after, ttl = asyncio.run(main())
    assert before == DemandRecord({"b": 10.0, "c": 30.0}, {"b": 20.0})
    assert after == DemandRecord({"c": 30.0}, {"b": 20.0})
    assert 0 < ttl <= 180


class FakeStore(DemandStore):
    """Counts writes and reads; holds the record in memory."""

    def __init__(self) -> None:
        self.wanted: dict[str, float] = {}
        self.last_used: dict[str, float] = {}
        self.writes = 0
        self.reads = 0

    async def want(self, model: str, at: float) -> None:
        self.writes += 1
        self.wanted.setdefault(model, at)

    async def used(self, model: str, at: float) -> None:
        self.writes += 1
        self.last_used[model] = at

    async def read(self) -> DemandRecord:
        self.reads += 1
        return DemandRecord(dict(self.wanted), dict(self.last_used))

    async def forget_wants(self, models: Iterable[str]) -> None:
        for model in models:
            self.wanted.pop(model, None)


def test_writes_and_syncs_are_rate_limited_and_a_met_want_is_deleted_from_the_record(tmp_path: Path) -> None:
    clock = Clock()
    fleet: ModelFleet = fleet_of(tmp_path, "ab", clock)
    store = FakeStore()
    demand = SharedDemand(fleet, store, sync_interval_s=0.25, clock=clock, wall_clock=clock)
    views: list[WorkerView] = [serving("n1", "a"), serving("n2", "a")]
    join(fleet, "n1")
    join(fleet, "n2")

    async def main() -> None:
        for _ in range(50):
            await demand.used("a")
        assert store.writes == 1  # one write for 50 requests within a second
        clock.now += 1
        await demand.used("a")
        assert store.writes == 2 and store.last_used == {"a": clock.now}

        clock.now += 60
        store.wanted["b"] = clock.now  # another coordinator's request waits for b
        for _ in range(20):
            await demand.rebalance(views)
        assert store.reads == 1  # one sync for 20 heartbeats within the interval
        assert sum(fleet.must_reassign(w.info.worker_id) for w in views) == 1

        clock.now += 1
        await demand.rebalance([serving("n1", "a"), serving("n2", "b")])
        assert store.reads == 2 and store.wanted == {}  # met: deleted for every coordinator

        await demand.want("b")
        assert "b" in store.wanted
        await demand.sync()
        assert {m.name: m.state for m in fleet.describe([])}["b"] == "loading"

    asyncio.run(main())
