"""Prometheus metrics of the coordinator: request outcomes as the service answers them, swarm state at scrape time."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from swarm.coordinator.routing import default_model
from swarm.coordinator.usage.usage_metrics import UsageCollector
from swarm.shared.failures import as_swarm_error
from swarm.shared.types import Finished, FinishReason, GenerationEvent, SwarmStatus, WorkerState, WorkerView
from swarm.shared.usage_types import UsageReport

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
RECENT_OUTCOMES = 20_000  # enough for ten minutes of a busy swarm's percentiles and rates


@dataclass(frozen=True)
class RequestOutcome:
    """One answered request, kept for the dashboard's rates and percentiles."""

    finished_at: float  # time.monotonic()
    status: str  # "ok", "cancelled" or an ErrorCode in lower case
    duration_s: float
    ttft_s: float | None  # None when no text arrived


class DispatchCounts(Protocol):
    """The dispatcher's running totals (swarm.coordinator.dispatcher.Dispatcher has them)."""

    @property
    def failovers(self) -> int: ...
    @property
    def failed(self) -> int: ...


def stage_label(view: WorkerView) -> str:
    info = view.info
    return "whole" if info.stage_count == 0 else f"{info.stage_index + 1}/{info.stage_count}"


def metric_model(requested: str, views: list[WorkerView], configured_default: str) -> str:
    """The model label of a request: a served model or the default one, never arbitrary client text."""
    served = {v.info.model for v in views} | {configured_default}
    model = requested or default_model(views, configured_default) or ""
    return model if model in served else ""


class SwarmStateCollector(Collector):
    """Gauges of the workers and the queue, from the status read for the scrape being answered."""

    def __init__(self, dispatch: DispatchCounts) -> None:
        self.status = SwarmStatus(workers=[], queue_depth=0, default_model="")
        self._dispatch = dispatch

    def collect(self) -> Iterator[Metric]:
        failovers = CounterMetricFamily(
            "swarm_failovers", "Requests resumed on another worker after theirs failed or stalled."
        )
        failovers.add_metric([], self._dispatch.failovers)
        yield failovers
        gave_up = CounterMetricFamily(
            "swarm_dispatch_failures", "Requests failed by the dispatcher: no worker came, or workers kept failing."
        )
        gave_up.add_metric([], self._dispatch.failed)
        yield gave_up
        workers = self.status.workers
        queue = GaugeMetricFamily("swarm_queue_depth", "Requests waiting in Redis for a worker.")
        queue.add_metric([], self.status.queue_depth)
        yield queue
        states = GaugeMetricFamily("swarm_workers", "Registered workers by state.", labels=["state"])
        for state in WorkerState:
            states.add_metric([state.value], sum(1 for w in workers if w.state is state))
        yield states
        models = GaugeMetricFamily(
            "swarm_model_workers_up", "Workers up taking requests for a model.", labels=["model"]
        )
        for model in sorted({w.info.model for w in workers} | ({self.status.default_model} - {""})):
            serving = [
                w for w in workers if w.state is WorkerState.UP and w.info.model == model and w.info.takes_requests
            ]
            models.add_metric([model], len(serving))
        yield models
        up = GaugeMetricFamily(
            "swarm_worker_up", "1 while the worker's heartbeat is alive.", labels=["worker", "model", "stage"]
        )
        for w in workers:
            up.add_metric([w.info.worker_id, w.info.model, stage_label(w)], 1 if w.up else 0)
        yield up
        per_worker: list[tuple[str, str, Callable[[WorkerView], float]]] = [
            ("swarm_worker_slots_busy", "Sequences the worker is running.", lambda w: w.load.slots_busy),
            ("swarm_worker_slots_total", "Sequences the worker can run at once.", lambda w: w.info.slots),
            ("swarm_worker_tokens_per_second", "Tokens the worker generated per second lately.", _tokens_per_second),
            ("swarm_worker_rss_bytes", "Resident memory of the worker process.", lambda w: w.load.rss_bytes),
            (
                "swarm_worker_ram_available_bytes",
                "Memory available on the worker's machine.",
                lambda w: w.load.ram_available_bytes,
            ),
            ("swarm_worker_heartbeat_age_seconds", "Seconds since the worker's last heartbeat.", _heartbeat_age),
        ]
        for name, help_text, value in per_worker:
            family = GaugeMetricFamily(name, help_text, labels=["worker"])
            for w in workers:
                family.add_metric([w.info.worker_id], value(w))
            yield family


def _tokens_per_second(view: WorkerView) -> float:
    return view.load.tokens_per_second


def _heartbeat_age(view: WorkerView) -> float:
    return max(view.heartbeat_age_s, 0.0)


class CoordinatorMetrics:
    """The coordinator's metrics in a registry of its own, so several coordinators can live in one process."""

    def __init__(self, dispatch: DispatchCounts) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("swarm_requests", "Requests answered, by outcome.", ["model", "status"], registry=r)
        self.generated_tokens = Counter(
            "swarm_generated_tokens", "Tokens generated for clients.", ["model"], registry=r
        )
        self.prompt_tokens = Counter(
            "swarm_prompt_tokens", "Prompt tokens of finished requests.", ["model"], registry=r
        )
        self.cached_prompt_tokens = Counter(
            "swarm_cached_prompt_tokens", "Prompt tokens a worker reused from its KV cache.", ["model"], registry=r
        )
        self.duration = Histogram(
            "swarm_request_duration_seconds",
            "From receiving a request to its last event.",
            ["model"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttft = Histogram(
            "swarm_time_to_first_token_seconds",
            "From receiving a request to its first piece of text.",
            ["model"],
            buckets=TTFT_BUCKETS,
            registry=r,
        )
        self.in_progress = Gauge("swarm_requests_in_progress", "Requests being answered now.", registry=r)
        self._state = SwarmStateCollector(dispatch)
        r.register(self._state)
        self._usage = UsageCollector()
        r.register(self._usage)
        self.recent: deque[RequestOutcome] = deque(maxlen=RECENT_OUTCOMES)

    async def observe(
        self, events: AsyncIterator[GenerationEvent], model: Callable[[], str]
    ) -> AsyncIterator[GenerationEvent]:
        """Passes a request's events through, recording its outcome, tokens and timings when it ends.

        `model` is asked at the end, when the request's model has been resolved.
        """
        started = time.monotonic()
        first_text: float | None = None
        finished: Finished | None = None
        status = "cancelled"  # the client went away unless the stream says otherwise
        self.in_progress.inc()
        try:
            async for event in events:
                if isinstance(event, Finished):
                    finished = event
                elif first_text is None:
                    first_text = time.monotonic()
                yield event
            if finished is not None and finished.reason != FinishReason.CANCELLED:
                status = "ok"
        except Exception as exc:
            error = as_swarm_error(exc)  # Redis failing counts as unavailable, as the client is told
            status = error.code.value.lower() if error is not None else "internal"
            raise
        finally:
            self.in_progress.dec()
            self._record(started, first_text, finished, status, model())

    def _record(
        self, started: float, first_text: float | None, finished: Finished | None, status: str, model: str
    ) -> None:
        now = time.monotonic()
        self.requests.labels(model, status).inc()
        self.duration.labels(model).observe(now - started)
        ttft = None
        if first_text is not None:
            ttft = first_text - started
            self.ttft.labels(model).observe(ttft)
        if finished is not None:
            self.generated_tokens.labels(model).inc(finished.completion_tokens)
            self.prompt_tokens.labels(model).inc(finished.prompt_tokens)
            self.cached_prompt_tokens.labels(model).inc(finished.cached_prompt_tokens)
        self.recent.append(RequestOutcome(now, status, now - started, ttft))

    def exposition(self, status: SwarmStatus, usage: UsageReport | None = None) -> bytes:
        """The Prometheus text format of every metric, with the swarm's state as of `status` and its usage."""
        self._state.status = status
        self._usage.usage = usage or UsageReport(0)
        return generate_latest(self.registry)


def add_metrics_route(
    app: web.Application,
    metrics: CoordinatorMetrics,
    status: Callable[[], Awaitable[SwarmStatus]],
    usage: Callable[[], Awaitable[UsageReport]] | None = None,
) -> None:
    """GET /metrics in the Prometheus text format; the swarm's state and usage are read from Redis for each scrape."""

    async def scrape(_request: web.Request) -> web.Response:
        body = metrics.exposition(await status(), await usage() if usage is not None else None)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/metrics", scrape)
