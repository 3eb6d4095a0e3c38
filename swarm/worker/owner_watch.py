"""OwnerWatch: `--when idle` at work; samples the owner's load twice a second, backs the worker off or back on.

Before any of that, while it serves, it runs as many threads as the cores other processes leave free
(owner_threads). Away because memory is short, it also frees its model (when given a way to), and loads
it again before it serves: the worker stays joined and says why it takes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

from swarm.worker.owner_backoff import SERVING, BackoffPolicy, BackoffState, Phase, next_state
from swarm.worker.owner_load import MEMORY_SHORT, LoadReading, OwnerThresholds, read_load, sample_between
from swarm.worker.owner_threads import ThreadStep, next_threads, threads_free

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 0.5
UNLOADED = "its model unloaded"

SetLoaded = Callable[[bool], Awaitable[None]]  # frees the model (False) or loads it again (True)
SetThreads = Callable[[int], Awaitable[None]]  # the engine's threads from its next step


class OwnerWatch:
    """Holds the backoff state; `watching` runs the sampling task and calls back when the state changes."""

    def __init__(
        self,
        thresholds: OwnerThresholds,
        policy: BackoffPolicy,
        *,
        read: Callable[[], LoadReading] = read_load,
        interval_s: float = SAMPLE_INTERVAL_S,
        most_threads: int = 1,
    ) -> None:
        self._thresholds = thresholds
        self.thread_step = ThreadStep(most_threads)
        self._policy = policy
        self._read = read
        self._interval_s = interval_s
        self.state = SERVING
        self.unloaded = False
        self._model_share = 0.0  # of RAM, what freeing the model gave back: loading it will take that again
        self._most_threads = most_threads

    def away(self) -> str:
        """Why the owner's load keeps this worker from new work ("" when it does not)."""
        if self.state.phase is Phase.SERVING:
            return ""
        return f"{self.state.phase}: {self.state.reason}" + (f"; {UNLOADED}" if self.unloaded else "")

    @contextlib.asynccontextmanager
    async def watching(
        self,
        hand_back: Callable[[], int],
        changed: Callable[[], None],
        set_loaded: SetLoaded | None = None,
        set_threads: SetThreads | None = None,
    ) -> AsyncIterator[None]:
        """Samples while the body runs: hand_back when the worker goes away, changed at every change of state,
        set_loaded (if given) to free the model while away for memory and to load it before serving again,
        set_threads (if given) to run on the cores others leave free."""
        task = asyncio.create_task(self._watch(hand_back, changed, set_loaded, set_threads), name="owner-watch")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(
        self,
        hand_back: Callable[[], int],
        changed: Callable[[], None],
        set_loaded: SetLoaded | None,
        set_threads: SetThreads | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        before = self._read()
        while True:
            await asyncio.sleep(self._interval_s)
            after = self._read()
            sample = sample_between(before, after)
            if self.unloaded:  # memory counts as back only with room for the model too: no load-free-load flapping
                sample = replace(sample, memory_available=sample.memory_available - self._model_share)
            before, was = after, self.state
            self.state = next_state(self._policy, was, self._thresholds.busy(sample), loop.time())
            if self.state.phase is Phase.SERVING and self.unloaded and set_loaded is not None:
                await self._load(set_loaded)  # before the coordinator hears it serves
            if self.state.phase is not was.phase:
                log.info(
                    "%s (others use %.0f%% of its cores, %.0f%% of memory free)",
                    self.away() or "serving again: the PC has been quiet",
                    sample.others_share * 100,
                    sample.memory_available * 100,
                )
                changed()  # first: the coordinator learns it takes nothing new before its work comes back
                if self.state.phase is Phase.AWAY:
                    log.info("%s: handed %d running requests to other workers", self.away(), hand_back())
            if self.state.reason == MEMORY_SHORT and self.state.phase is Phase.AWAY and not self.unloaded:
                set_loaded = await self._unload(set_loaded, changed)
            if set_threads is not None and self.state.phase is not Phase.AWAY:
                await self._fit_threads(set_threads, after.cores, sample.others_share, loop.time())

    async def _fit_threads(self, set_threads: SetThreads, cores: int, others_share: float, now: float) -> None:
        fitting = threads_free(self._most_threads, cores, others_share)
        step = next_threads(self.thread_step, fitting, now, self._policy.more_threads_after_s)
        if step.threads != self.thread_step.threads:
            await set_threads(step.threads)
            log.info(
                "running on %d of %d threads: other processes use %.0f%% of its cores",
                step.threads,
                self._most_threads,
                others_share * 100,
            )
        self.thread_step = step

    async def _unload(self, set_loaded: SetLoaded | None, changed: Callable[[], None]) -> SetLoaded | None:
        """Frees the model; what to call the next time (None once freeing it failed: no use trying again)."""
        if set_loaded is None:
            return None
        before = self._read().memory_available
        try:
            await set_loaded(False)
        except Exception:
            log.exception("could not free its model's memory")
            return None
        self._model_share = max(0.0, self._read().memory_available - before)
        self.unloaded = True
        log.info("%s: freed its model's memory (%.1f%% of RAM)", self.away(), self._model_share * 100)
        changed()
        return set_loaded

    async def _load(self, set_loaded: SetLoaded) -> None:
        try:
            await set_loaded(True)
        except Exception:  # e.g. llama.cpp could not allocate it: away again, to try after another quiet spell
            log.exception("could not load its model again")
            self.state = BackoffState(Phase.AWAY, MEMORY_SHORT)
            return
        self.unloaded = False
        log.info("loaded its model again")
