"""OwnerWatch: `--when idle` at work; samples the owner's load twice a second, backs the worker off or back on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from swarm.worker.owner_backoff import SERVING, BackoffPolicy, Phase, next_state
from swarm.worker.owner_load import LoadReading, OwnerThresholds, read_load, sample_between

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 0.5


class OwnerWatch:
    """Holds the backoff state; `watching` runs the sampling task and calls back when the state changes."""

    def __init__(
        self,
        thresholds: OwnerThresholds,
        policy: BackoffPolicy,
        *,
        read: Callable[[], LoadReading] = read_load,
        interval_s: float = SAMPLE_INTERVAL_S,
    ) -> None:
        self._thresholds = thresholds
        self._policy = policy
        self._read = read
        self._interval_s = interval_s
        self.state = SERVING

    def away(self) -> str:
        """Why the owner's load keeps this worker from new work ("" when it does not)."""
        return "" if self.state.phase is Phase.SERVING else f"{self.state.phase}: {self.state.reason}"

    @contextlib.asynccontextmanager
    async def watching(self, hand_back: Callable[[], int], changed: Callable[[], None]) -> AsyncIterator[None]:
        """Samples while the body runs: hand_back when the worker goes away, changed at every change of state."""
        task = asyncio.create_task(self._watch(hand_back, changed), name="owner-watch")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self, hand_back: Callable[[], int], changed: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        before = self._read()
        while True:
            await asyncio.sleep(self._interval_s)
            after = self._read()
            sample = sample_between(before, after)
            before, was = after, self.state
            self.state = next_state(self._policy, was, self._thresholds.busy(sample), loop.time())
            if self.state.phase is was.phase:
                continue
            log.info(
                "%s (others use %.0f%% of its cores, %.0f%% of memory free)",
                self.away() or "serving again: the PC has been quiet",
                sample.others_share * 100,
                sample.memory_available * 100,
            )
            changed()  # first: the coordinator learns it takes nothing new before its work comes back
            if self.state.phase is Phase.AWAY:
                log.info("%s: handed %d running requests to other workers", self.away(), hand_back())
