"""The dashboard's usage panel: tokens, energy and cost per tenant, and the swarm's cost per million tokens."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from swarm.shared.usage_cost import cost_report
from swarm.shared.usage_types import CostFigures, UsageReport

# An async callable returning the usage to show (InferenceService.usage: all time).
UsageSource = Callable[[], Awaitable[UsageReport]]


async def no_usage() -> UsageReport:
    return UsageReport(0)


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def usage_panel_json(usage: UsageReport, only_tenant: str | None = None) -> dict[str, Any]:
    """The usage panel's figures; only_tenant: a non-admin key's name, which sees its own row and figures only."""
    costs = cost_report(usage)
    tenants = []
    for name, counts in usage.by_tenant().items():
        if only_tenant is not None and name != only_tenant:
            continue
        figures = costs.by_tenant.get(name, CostFigures())
        tenants.append(
            {
                "tenant": name,
                "requests": counts.requests,
                "prompt_tokens": counts.prompt,
                "cached_prompt_tokens": counts.cached_prompt,
                "completion_tokens": counts.completion,
                "energy_wh": figures.energy_wh,
                "cost": figures.cost,
                "cost_per_million": figures.cost_per_million,
            }
        )
    if only_tenant is not None:
        own = costs.by_tenant.get(only_tenant, CostFigures())
        return {
            "tenants": tenants,
            "cost_per_million": own.cost_per_million,
            "wh_per_million": _rounded(own.wh_per_million, 2),
            "completion_tokens": own.tokens,
        }
    return {
        "tenants": tenants,
        "cost_per_million": costs.swarm.cost_per_million,
        "wh_per_million": _rounded(costs.swarm.wh_per_million, 2),
        "completion_tokens": costs.swarm.tokens,
    }
