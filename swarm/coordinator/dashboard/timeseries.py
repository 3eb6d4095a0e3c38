"""SwarmSampler: samples the swarm once a second into a ten-minute ring buffer for the dashboard's charts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from redis.exceptions import RedisError

from swarm.coordinator.dashboard.batch_jobs import BatchJobSource, BatchJobView
from swarm.coordinator.dashboard.usage_panel import UsageSource, no_usage
from swarm.coordinator.metrics import RequestOutcome
from swarm.shared.cancellation import stop_if_cancelled
from swarm.shared.types import SwarmStatus
from swarm.shared.usage_types import UsageReport

log = logging.getLogger(__name__)

HISTORY_SAMPLES = 600  # ten minutes at one sample a second
RATE_WINDOW_S = 5.0  # requests/s is averaged over this long, so one finished request is not a spike
PERCENTILE_WINDOW_S = 60.0  # latency percentiles cover the requests of the last minute
USAGE_EVERY_SAMPLES = 5  # usage (a few Redis hashes) is read every fifth sample


@dataclass(frozen=True)
class Sample:
    at: float  # unix time
    queue_depth: int
    requests_per_second: float
    tokens_per_second: float  # the sum of the workers' own recent rates
    errors_per_second: float
    latency_p50_s: float | None  # None: no request finished in the window
    latency_p95_s: float | None
    ttft_p50_s: float | None
    ttft_p95_s: float | None


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile (fraction 0..1) of `values`; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def take_sample(status: SwarmStatus, outcomes: Iterable[RequestOutcome], now: float, unix_now: float) -> Sample:
    """One point of the charts from the swarm's status and the requests answered so far (monotonic `now`)."""
    in_rate = [o for o in outcomes if now - o.finished_at <= PERCENTILE_WINDOW_S]
    rate_window = [o for o in in_rate if now - o.finished_at <= RATE_WINDOW_S]
    answered = [o for o in in_rate if o.status == "ok"]
    durations = [o.duration_s for o in answered]
    ttfts = [o.ttft_s for o in answered if o.ttft_s is not None]
    errors = [o for o in rate_window if o.status not in ("ok", "cancelled")]
    return Sample(
        at=unix_now,
        queue_depth=status.queue_depth,
        requests_per_second=len(rate_window) / RATE_WINDOW_S,
        tokens_per_second=sum(w.load.tokens_per_second for w in status.workers if w.up),
        errors_per_second=len(errors) / RATE_WINDOW_S,
        latency_p50_s=percentile(durations, 0.5),
        latency_p95_s=percentile(durations, 0.95),
        ttft_p50_s=percentile(ttfts, 0.5),
        ttft_p95_s=percentile(ttfts, 0.95),
    )


class SwarmSampler:
    """Reads the swarm's status (and batch jobs) every `interval_s`, keeps the samples, wakes who waits for one."""

    def __init__(
        self,
        status: Callable[[], Awaitable[SwarmStatus]],
        outcomes: Callable[[], Iterable[RequestOutcome]],
        batch_jobs: BatchJobSource,
        interval_s: float = 1.0,
        usage: UsageSource = no_usage,
    ) -> None:
        self._status = status
        self._outcomes = outcomes
        self._batch_jobs = batch_jobs
        self._usage = usage
        self.latest_usage = UsageReport(0)
        self._interval_s = interval_s
        self.samples: deque[Sample] = deque(maxlen=HISTORY_SAMPLES)
        self.latest_status: SwarmStatus | None = None
        self.latest_batch_jobs: Sequence[BatchJobView] = []
        self.sequence = 0  # how many samples were taken; a waiter compares it with the one it saw
        self._changed = asyncio.Condition()

    async def sample_once(self) -> None:
        status = await self._status()
        self.latest_batch_jobs = await self._batch_jobs()
        if self.sequence % USAGE_EVERY_SAMPLES == 0:
            self.latest_usage = await self._usage()
        self.samples.append(take_sample(status, list(self._outcomes()), time.monotonic(), time.time()))
        self.latest_status = status
        async with self._changed:
            self.sequence += 1
            self._changed.notify_all()

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.sample_once()
            except RedisError as exc:
                log.warning("dashboard cannot read the swarm's status from Redis: %s", exc)
            stop_if_cancelled()  # a cancel redis-py swallowed must still stop the loop, or the app's cleanup hangs
            await asyncio.sleep(max(0.0, self._interval_s - (time.monotonic() - started)))

    async def wait_after(self, seen: int, timeout_s: float) -> int:
        """Waits until a sample newer than `seen` exists (or the timeout passes); returns the newest sequence."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait_for(lambda: self.sequence > seen), timeout_s)
            return self.sequence
