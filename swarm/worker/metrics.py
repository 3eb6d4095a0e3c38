"""A worker's own Prometheus metrics at /metrics on its --metrics [HOST:]PORT (loopback unless a host is named)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psutil
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from swarm.shared.addresses import split_host_port
from swarm.shared.tls import TlsFiles, ssl_context_for_http
from swarm.shared.types import WorkerInfo, WorkerLoad

log = logging.getLogger(__name__)

# The metrics endpoint takes no API key: it listens where nothing else can reach it unless the
# operator names a host to serve on (e.g. 0.0.0.0:9100 for a Prometheus on another PC).
DEFAULT_METRICS_HOST = "127.0.0.1"


def metrics_bind_address(address: str) -> tuple[str, int]:
    """The host and port --metrics asks for: a bare PORT (or :PORT) means the loopback interface only."""
    if address.isdigit():
        address = f":{address}"
    if address.startswith(":"):
        address = DEFAULT_METRICS_HOST + address
    return split_host_port(address)


@dataclass(frozen=True)
class WorkerCounters:
    """What one scrape reads from the worker: its load and how many requests it took."""

    load: WorkerLoad
    requests_total: int = 0
    requests_active: int = 0
    steps: int = 0  # batched decode steps
    step_seconds: float = 0.0
    proposed_tokens: int = 0  # speculation: tokens proposed for verification
    accepted_tokens: int = 0  # and confirmed by the model


def process_load() -> WorkerLoad:
    """The memory side of a worker's load, for a process with no engine counters (a later pipeline stage)."""
    return WorkerLoad(
        rss_bytes=psutil.Process().memory_info().rss, ram_available_bytes=psutil.virtual_memory().available
    )


class WorkerCollector(Collector):
    """Reads the worker's counters at scrape time, so nothing is counted twice or goes stale."""

    def __init__(self, info: WorkerInfo, read: Callable[[], WorkerCounters]) -> None:
        self._info = info
        self._read = read

    def collect(self) -> Iterator[Metric]:
        info = self._info
        counters = self._read()
        load = counters.load
        stage = "whole" if info.stage_count == 0 else f"{info.stage_index + 1}/{info.stage_count}"
        about = GaugeMetricFamily("swarm_worker_info", "What this worker serves.", labels=["worker", "model", "stage"])
        about.add_metric([info.worker_id, info.model, stage], 1)
        yield about
        counts = [
            ("swarm_worker_generated_tokens", "Tokens this worker generated.", load.tokens_generated),
            ("swarm_worker_prompt_tokens", "Prompt tokens of the requests this worker started.", load.prompt_tokens),
            (
                "swarm_worker_cached_prompt_tokens",
                "Prompt tokens reused from the KV cache instead of computed.",
                load.cached_prompt_tokens,
            ),
            ("swarm_worker_requests", "Requests this worker accepted.", counters.requests_total),
            (
                "swarm_worker_speculation_proposed_tokens",
                "Tokens proposed from requests' own context and verified in a batched step (speculative decoding).",
                counters.proposed_tokens,
            ),
            (
                "swarm_worker_speculation_accepted_tokens",
                "Proposed tokens the model's own choices confirmed: divided by the proposed ones, the acceptance.",
                counters.accepted_tokens,
            ),
        ]
        for name, help_text, value in counts:
            counter = CounterMetricFamily(name, help_text)
            counter.add_metric([], value)
            yield counter
        yield SummaryMetricFamily(
            "swarm_worker_step_seconds",
            "Batched decode steps (one token for every running sequence) and their time.",
            count_value=counters.steps,
            sum_value=counters.step_seconds,
        )
        gauges = [
            ("swarm_worker_requests_active", "Requests running now.", counters.requests_active),
            ("swarm_worker_slots_busy", "Sequences being decoded now.", load.slots_busy),
            ("swarm_worker_slots_total", "Sequences this worker can run at once.", info.slots),
            ("swarm_worker_tokens_per_second", "Tokens generated per second lately.", load.tokens_per_second),
            ("swarm_worker_rss_bytes", "Resident memory of this process.", load.rss_bytes),
            ("swarm_worker_ram_available_bytes", "Memory available on this machine.", load.ram_available_bytes),
        ]
        for name, help_text, number in gauges:
            gauge = GaugeMetricFamily(name, help_text)
            gauge.add_metric([], number)
            yield gauge


class MetricsEndpoint:
    """The worker's /metrics HTTP server; `close` stops it (a no-op when none was asked for)."""

    def __init__(self, runner: web.AppRunner | None) -> None:
        self._runner = runner

    @property
    def listening_on(self) -> list[tuple[str, int]]:
        """The (host, port) of each socket it listens on, as the system bound them."""
        if self._runner is None:
            return []
        return [(str(address[0]), int(address[1])) for address in self._runner.addresses]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def serve_metrics(address: str, collector: Collector, tls: TlsFiles | None = None) -> MetricsEndpoint:
    """Serves the collector's metrics at http(s)://ADDRESS/metrics; an empty address serves nothing."""
    if not address:
        return MetricsEndpoint(None)
    registry = CollectorRegistry()
    registry.register(collector)

    async def scrape(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = metrics_bind_address(address)
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context_for_http(tls) if tls else None).start()
    except OSError:
        await runner.cleanup()
        raise
    log.info("metrics at %s://%s:%d/metrics", "https" if tls else "http", host, port)
    return MetricsEndpoint(runner)
