"""Usage in /metrics: tokens per tenant and model, busy seconds per worker, energy and cost per tenant."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from swarm.coordinator.metrics import CoordinatorMetrics
from swarm.shared.types import SwarmStatus
from swarm.shared.usage_types import TokenCounts, UsageReport, UsageRow, WorkerBusy


class NoDispatch:
    failovers = 0
    failed = 0


def test_usage_metrics_are_labelled_by_tenant_name() -> None:
    usage = UsageReport(
        0,
        (
            UsageRow("key-1a2b3c4d", "tiny", "w1", TokenCounts(10, 4, 30, 2)),
            UsageRow("key-1a2b3c4d", "tiny", "w2", TokenCounts(5, 0, 10, 1)),
            UsageRow("team-b", "tiny", "w1", TokenCounts(1, 0, 40, 1)),
        ),
        (WorkerBusy("w1", 720.0, 50.0, 0.05), WorkerBusy("w2", 36.0, 100.0, 0.0)),
        60.0,
    )
    text = CoordinatorMetrics(NoDispatch()).exposition(SwarmStatus([], 0, ""), usage).decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    pair = (("model", "tiny"), ("tenant", "key-1a2b3c4d"))
    assert samples[("swarm_usage_completion_tokens_total", pair)] == 40
    assert samples[("swarm_usage_prompt_tokens_total", pair)] == 15
    assert samples[("swarm_usage_cached_prompt_tokens_total", pair)] == 4
    assert samples[("swarm_usage_requests_total", pair)] == 3
    assert samples[("swarm_worker_busy_seconds_total", (("worker", "w1"),))] == 720.0
    # w1: 10 Wh, 0.01 over 70 tokens; key-1a2b3c4d had 30 of them there, and all 10 of w2 (1 Wh, no cost).
    assert samples[("swarm_usage_energy_wh", (("tenant", "key-1a2b3c4d"),))] == pytest.approx(10 * 30 / 70 + 1)
    assert samples[("swarm_usage_cost", (("tenant", "team-b"),))] == pytest.approx(0.01 * 40 / 70)
    assert samples[("swarm_cost_per_million_tokens", ())] == pytest.approx(0.01 / 80 * 1e6)
