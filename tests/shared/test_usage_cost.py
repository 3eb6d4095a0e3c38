"""Cost per token, pure: stated watts and hourly cost over measured busy time, shared out by tokens."""

from __future__ import annotations

import pytest

from swarm.shared.usage_cost import cost_report
from swarm.shared.usage_types import TokenCounts, UsageReport, UsageRow, WorkerBusy


def test_cost_per_million_tokens_matches_a_hand_computation() -> None:
    # Worker a: 65 W, 0.02 per hour, busy 1800 s, served 3000 tokens of tenant x and 1000 of y.
    # Worker b: 30 W, no stated cost, busy 360 s, served 1000 tokens of y.
    usage = UsageReport(
        since_hour=0,
        rows=(
            UsageRow("x", "gemma", "a", TokenCounts(100, 10, 3000, 3)),
            UsageRow("y", "gemma", "a", TokenCounts(50, 0, 1000, 1)),
            UsageRow("y", "tiny", "b", TokenCounts(20, 0, 1000, 2)),
        ),
        workers=(WorkerBusy("a", 1800.0, watts=65.0, cost_per_hour=0.02), WorkerBusy("b", 360.0, watts=30.0)),
        seconds=100.0,
    )
    report = cost_report(usage)
    a = report.by_worker["a"]
    assert a.energy_wh == pytest.approx(65 * 0.5)  # 32.5 Wh
    assert a.cost == pytest.approx(0.02 * 0.5)  # 0.01
    assert a.cost_per_million == pytest.approx(0.01 / 4000 * 1e6)  # 2.5 per million tokens
    assert a.wh_per_million == pytest.approx(32.5 / 4000 * 1e6)
    b = report.by_worker["b"]
    assert b.energy_wh == pytest.approx(3.0)
    assert b.cost == 0.0
    # x had 3/4 of a's tokens: 3/4 of its energy and cost; y the rest of a and all of b.
    assert report.by_tenant["x"].energy_wh == pytest.approx(32.5 * 0.75)
    assert report.by_tenant["x"].cost_per_million == pytest.approx(0.0075 / 3000 * 1e6)
    assert report.by_tenant["y"].energy_wh == pytest.approx(32.5 * 0.25 + 3.0)
    assert report.by_model["tiny"].energy_wh == pytest.approx(3.0)
    assert report.swarm.tokens == 5000
    assert report.swarm.energy_wh == pytest.approx(35.5)
    assert report.swarm.cost_per_million == pytest.approx(0.01 / 5000 * 1e6)
    assert report.tokens_per_second == pytest.approx(50.0)


def test_no_tokens_means_no_cost_per_million() -> None:
    report = cost_report(UsageReport(0, (), (WorkerBusy("idle", 60.0, watts=10.0),), 60.0))
    assert report.by_worker["idle"].cost_per_million is None
    assert report.by_worker["idle"].energy_wh == pytest.approx(10 / 60)
