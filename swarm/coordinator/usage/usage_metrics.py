"""Usage in /metrics: all-time tokens per tenant and model, busy seconds per worker, energy and cost per tenant.

Read from Redis for each scrape, so every coordinator shows the swarm's totals. Labelled by the
tenant's name (a key's name, or "key-" and 8 hex of a static key's digest), never by a secret.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from swarm.shared.usage_cost import cost_report
from swarm.shared.usage_types import UsageReport


class UsageCollector(Collector):
    def __init__(self) -> None:
        self.usage = UsageReport(0)  # set before each scrape

    def collect(self) -> Iterator[Metric]:
        usage = self.usage
        kinds = (
            ("prompt", "swarm_usage_prompt_tokens", "Prompt tokens of answered requests."),
            ("cached_prompt", "swarm_usage_cached_prompt_tokens", "Prompt tokens a worker reused from its KV cache."),
            ("completion", "swarm_usage_completion_tokens", "Tokens clients received."),
            ("requests", "swarm_usage_requests", "Requests accounted."),
        )
        by_pair: dict[tuple[str, str], dict[str, int]] = {}
        for row in usage.rows:
            sums = by_pair.setdefault((row.tenant, row.model), {})
            for kind, _, _ in kinds:
                sums[kind] = sums.get(kind, 0) + getattr(row.tokens, kind)
        for kind, name, help_text in kinds:
            family = CounterMetricFamily(name, help_text, labels=["tenant", "model"])
            for (tenant, model), sums in sorted(by_pair.items()):
                family.add_metric([tenant, model], sums[kind])
            yield family
        busy = CounterMetricFamily(
            "swarm_worker_busy_seconds", "Seconds the worker had at least one sequence running.", labels=["worker"]
        )
        for worker in usage.workers:
            busy.add_metric([worker.worker], worker.busy_s)
        yield busy
        costs = cost_report(usage)
        energy = GaugeMetricFamily(
            "swarm_usage_energy_wh", "Energy of the tenant's tokens, from its workers' stated watts.", labels=["tenant"]
        )
        cost = GaugeMetricFamily(
            "swarm_usage_cost", "Cost of the tenant's tokens, from its workers' stated hourly cost.", labels=["tenant"]
        )
        for tenant, figures in costs.by_tenant.items():
            energy.add_metric([tenant], figures.energy_wh)
            cost.add_metric([tenant], figures.cost)
        yield energy
        yield cost
        per_million = GaugeMetricFamily(
            "swarm_cost_per_million_tokens", "The swarm's cost per million completion tokens, all time."
        )
        per_million.add_metric([], costs.swarm.cost_per_million or 0.0)
        yield per_million
