"""HeartbeatMonitor: keeps the coordinator's view of the workers fresh and logs up/down changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from redis.exceptions import RedisError

from swarm.coordinator.registry import WorkerRegistry
from swarm.shared.cancellation import stop_if_cancelled
from swarm.shared.types import WorkerId, WorkerView

log = logging.getLogger(__name__)


class HeartbeatMonitor:
    """Polls the registry at a steady pace; a worker whose heartbeat key expired is down."""

    def __init__(
        self,
        registry: WorkerRegistry,
        poll_interval_s: float,
        forget_after_s: float,
    ) -> None:
        self._registry = registry
        self._interval = poll_interval_s
        self.on_change: Callable[[], None] = lambda: None  # called when a worker joins, leaves or flips
        self._forget_after_s = forget_after_s
        self._views: dict[WorkerId, WorkerView] = {}

    @property
    def workers(self) -> list[WorkerView]:
        return list(self._views.values())

    async def refresh(self) -> None:
        fresh = {v.info.worker_id: v for v in await self._registry.snapshot()}
        changed = fresh.keys() != self._views.keys()
        for worker_id, view in fresh.items():
            before = self._views.get(worker_id)
            if before is None or before.up != view.up:
                changed = True
                log.info(
                    "worker %s (%s, %s) is %s",
                    worker_id,
                    view.info.address,
                    view.info.model,
                    "up" if view.up else "down",
                )
            if not view.up and view.heartbeat_age_s > self._forget_after_s:
                log.info("forgetting worker %s: down for %.0f s", worker_id, view.heartbeat_age_s)
                await self._registry.forget(worker_id)
        self._views = fresh
        if changed:
            self.on_change()

    async def run(self) -> None:
        while True:
            try:
                await self.refresh()
            except RedisError as exc:
                log.warning("cannot read the registry from Redis: %s", exc)
            stop_if_cancelled()
            await asyncio.sleep(self._interval)
