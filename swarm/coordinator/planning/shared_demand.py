"""SharedDemand: a coordinator's ModelFleet kept in step with what every coordinator's requests ask for.

Workers heartbeat through one coordinator, so the fleet that moves nodes to a model is that one's, while
the request asking for the model may wait on another. Wants and uses are written through to the
DemandStore, and the fleet merges the shared record before it rebalances (at most once a sync interval,
not on each of hundreds of heartbeats a second); a want the fleet finds met is deleted there too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from swarm.coordinator.planning.demand_store import DemandStore
from swarm.coordinator.planning.model_fleet import ModelFleet
from swarm.shared.types import WorkerView

# A model asked for by many requests a second costs one Redis write a second per coordinator, not one each:
# eviction order needs no finer grain, and a want is renewed long before its key's TTL.
WRITE_INTERVAL_S = 1.0


class SharedDemand:
    def __init__(
        self,
        fleet: ModelFleet,
        store: DemandStore,
        sync_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.fleet = fleet
        self._store = store
        self._sync_interval_s = sync_interval_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._next_sync = 0.0
        self._used_written: dict[str, float] = {}  # model -> when (clock) its use was last written
        self._want_written: dict[str, float] = {}

    async def used(self, model: str) -> None:
        """A request asked for the model (at most one Redis write, none if this model's was written lately)."""
        self.fleet.used(model)
        if self._due(self._used_written, model):
            await self._store.used(model, self._wall_clock())

    async def want(self, model: str) -> None:
        """A request waits for the model and no worker serves it; recorded for every coordinator first."""
        if self._due(self._want_written, model):
            await self._store.want(model, self._wall_clock())
        self.fleet.want(model)

    async def rebalance(self, views: Iterable[WorkerView]) -> None:
        """The fleet's rebalance, on the demand of every coordinator."""
        now = self._clock()
        if now >= self._next_sync:
            self._next_sync = now + self._sync_interval_s  # set first: concurrent heartbeats read once
            await self.sync()
        met = self.fleet.rebalance(views)
        if met:
            await self._store.forget_wants(met)

    async def sync(self) -> None:
        """Merges the shared demand into the fleet now."""
        record = await self._store.read()
        self.fleet.merge_demand(record.wanted, record.last_used)

    def _due(self, written: dict[str, float], model: str) -> bool:
        now = self._clock()
        if model in written and now - written[model] < WRITE_INTERVAL_S:
            return False
        written[model] = now
        return True
