"""How many groups of sessions a pipeline's first stage keeps in flight, from measured step times (pure)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from swarm.worker.decode_groups import best_group_count, round_seconds


def per_step(fixed: float, per_row: float) -> Callable[[int], float]:
    """A stage whose step costs `fixed` seconds plus `per_row` for each row."""
    return lambda rows: fixed + per_row * rows


# Gemma 3 270M split in 2 on one thread each (docs/benchmarks.md, "Stages that never idle"): the first stage
# 12.7 ms at 4 rows and 19 ms at 8; the last, with the output head read once per step, 65 and 93 ms.
GEMMA_FIRST = per_step(0.0064, 0.00158)
GEMMA_LAST = per_step(0.037, 0.007)


def test_a_last_stage_that_pays_per_step_runs_in_lock_step() -> None:
    assert round_seconds(8, 1, GEMMA_FIRST, GEMMA_LAST, GEMMA_LAST) < round_seconds(
        8, 2, GEMMA_FIRST, GEMMA_LAST, GEMMA_LAST
    )
    assert best_group_count(8, 2, GEMMA_FIRST, GEMMA_LAST, GEMMA_LAST) == 1


def test_even_stages_keep_a_group_per_stage_in_flight() -> None:
    stage = per_step(0.002, 0.003)
    assert best_group_count(8, 2, stage, stage, stage) == 2
    # three even stages: the later two together cost twice the slowest of them
    assert best_group_count(9, 3, stage, lambda r: 2 * stage(r), stage) == 3


def test_a_round_is_never_shorter_than_one_groups_trip() -> None:
    first = per_step(0.0, 0.001)
    after = per_step(0.050, 0.0)  # e.g. a slow link: the trip, not any stage, bounds the round
    slowest = per_step(0.0, 0.001)
    assert round_seconds(4, 2, first, after, slowest) == pytest.approx(0.050 + 0.002)
    assert best_group_count(4, 2, first, after, slowest) == 2  # two groups ride the same trip


def test_never_more_groups_than_sessions_or_steps_in_flight() -> None:
    stage = per_step(0.0, 0.001)
    assert best_group_count(1, 3, stage, stage, stage) == 1
    assert best_group_count(2, 3, stage, stage, stage) == 2
    assert best_group_count(8, 1, stage, stage, stage) == 1
    assert best_group_count(0, 2, stage, stage, stage) == 1
