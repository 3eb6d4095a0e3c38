"""The `--when idle` backoff policy on synthetic sample sequences (pure logic: time injected, no worker runs)."""

from __future__ import annotations

import random

from swarm.worker.owner_backoff import SERVING, BackoffPolicy, BackoffState, Phase, next_state
from swarm.worker.owner_load import OWNER_BUSY, LoadSample, OwnerThresholds

INTERVAL_S = 0.5
POLICY = BackoffPolicy(quiet_s=30.0)
LIMITS = OwnerThresholds()


def run(shares: list[float], state: BackoffState = SERVING) -> list[BackoffState]:
    """The state after each sample, samples INTERVAL_S apart."""
    states = []
    for index, share in enumerate(shares):
        state = next_state(POLICY, state, LIMITS.busy(LoadSample(share, 0.5, 0.0)), index * INTERVAL_S)
        states.append(state)
    return states


def test_a_noisy_idle_pc_never_backs_off() -> None:
    noise = random.Random(19)
    states = run([noise.uniform(0.0, 0.28) for _ in range(2000)])
    assert {state.phase for state in states} == {Phase.SERVING}


def test_a_lone_spike_stops_new_work_for_one_sample_and_never_hands_work_away() -> None:
    states = run([0.05, 0.9, 0.05, 0.05, 0.9, 0.1])
    assert [s.phase for s in states] == [Phase.SERVING, Phase.BACKING_OFF, Phase.SERVING] * 2
    assert states[1].reason == OWNER_BUSY


def test_a_sustained_hog_sends_work_away_at_the_second_sample() -> None:
    states = run([0.05] * 4 + [0.95] * 10)
    assert [s.phase for s in states[4:6]] == [Phase.BACKING_OFF, Phase.AWAY]  # within 1 s of the hog starting
    assert all(s.phase is Phase.AWAY and s.reason == OWNER_BUSY for s in states[5:])


def test_a_hog_that_ends_lets_the_worker_serve_once_after_the_quiet_period() -> None:
    hog, quiet = [0.95] * 20, [0.05] * 100
    states = run(hog + quiet)
    phases = [s.phase for s in states]
    back = phases.index(Phase.SERVING, len(hog))
    assert (back - len(hog)) * INTERVAL_S == POLICY.quiet_s  # 30 s after the first quiet sample, not before
    assert set(phases[back:]) == {Phase.SERVING}  # and it stays


def test_a_busy_sample_while_away_starts_the_quiet_period_again() -> None:
    states = run([0.95] * 4 + [0.05] * 40 + [0.95] + [0.05] * 60 + [0.05] * 10)
    phases = [s.phase for s in states]
    assert Phase.SERVING not in phases[4:45]  # 20 s quiet was not enough, then a busy sample
    back = phases.index(Phase.SERVING, 4)
    assert (back - 45) * INTERVAL_S == POLICY.quiet_s
    assert phases.count(Phase.AWAY) == back - 1  # one stretch away: no flapping
