"""Cost per token, pure: each worker's busy time and stated watts or hourly cost, shared out by tokens.

A worker's busy seconds (time with at least one sequence running) times its watts is its energy, times
its hourly cost its money. What it served is charged in proportion to the completion tokens each tenant
and model had there, so the parts add up to the worker's whole.
"""

from __future__ import annotations

from swarm.shared.usage_types import CostFigures, CostReport, UsageReport


def worker_figures(busy_s: float, watts: float, cost_per_hour: float, tokens: int) -> CostFigures:
    return CostFigures(tokens, busy_s, busy_s * watts / 3600.0, busy_s * cost_per_hour / 3600.0)


def cost_report(usage: UsageReport) -> CostReport:
    tokens_on = {worker: counts.completion for worker, counts in usage.by_worker().items()}
    by_worker = {
        busy.worker: worker_figures(busy.busy_s, busy.watts, busy.cost_per_hour, tokens_on.get(busy.worker, 0))
        for busy in usage.workers
    }
    by_model: dict[str, CostFigures] = {}
    by_tenant: dict[str, CostFigures] = {}
    for row in usage.rows:
        whole = by_worker.get(row.worker)
        if whole is None or not whole.tokens:
            continue
        share = row.tokens.completion / whole.tokens
        part = CostFigures(row.tokens.completion, whole.busy_s * share, whole.energy_wh * share, whole.cost * share)
        by_model[row.model] = by_model.get(row.model, CostFigures()) + part
        by_tenant[row.tenant] = by_tenant.get(row.tenant, CostFigures()) + part
    swarm = sum(by_worker.values(), CostFigures())
    total_tokens = sum(c.completion for c in usage.by_tenant().values())
    swarm = CostFigures(total_tokens, swarm.busy_s, swarm.energy_wh, swarm.cost)
    rate = total_tokens / usage.seconds if usage.seconds > 0 else 0.0
    return CostReport(swarm, by_worker, dict(sorted(by_model.items())), dict(sorted(by_tenant.items())), rate)
