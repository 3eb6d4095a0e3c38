"""`swarm usage`'s pure parts: the --since window and the table."""

from __future__ import annotations

from datetime import datetime

import pytest

from swarm.cli.usage_command import since_hour, usage_lines
from swarm.shared.usage_cost import cost_report
from swarm.shared.usage_types import TokenCounts, UsageReport, UsageRow, WorkerBusy

NOW = 1_800_000_000.0  # a unix time


def test_since_takes_minutes_hours_days_or_a_date() -> None:
    hour = int(NOW // 3600)
    assert since_hour("", NOW) == 0
    assert since_hour("2h", NOW) == hour - 2
    assert since_hour("90m", NOW) == int((NOW - 5400) // 3600)
    assert since_hour("7d", NOW) == hour - 7 * 24
    assert since_hour("2026-12-01", NOW) == int(datetime(2026, 12, 1).timestamp() // 3600)
    with pytest.raises(ValueError):
        since_hour("yesterday", NOW)


def test_the_table_shows_each_key_and_the_swarm_s_cost_per_million_tokens() -> None:
    usage = UsageReport(
        0,
        (UsageRow("key-a", "gemma", "w1", TokenCounts(10, 2, 1000, 4)),),
        (WorkerBusy("w1", 360.0, 65.0, 0.02),),
        100.0,
    )
    lines = usage_lines(usage, cost_report(usage))
    assert lines[0].startswith("usage all kept: 10.00 tokens/s, cost per million tokens 2.0000")  # 0.002 / 1000 tokens
    row = next(line for line in lines if line.startswith("key-a"))
    assert row.split()[1:5] == ["4", "10", "2", "1000"]
