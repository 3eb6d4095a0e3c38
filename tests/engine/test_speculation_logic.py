"""The pure logic of speculation: prompt-lookup proposals, how many tokens a sequence verifies, and verification."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import pytest

from swarm.engine.speculation import PromptLookup, SpeculationBudget
from swarm.engine.speculation.budget import Acceptance, WorkerAcceptance
from swarm.engine.speculation.step_cost import StepCost
from swarm.engine.speculation.verification import verify
from swarm.shared.stage_messages import Sampled
from tests.engine.chi_square import fits


def test_proposes_what_followed_the_latest_earlier_occurrence() -> None:
    lookup = PromptLookup([1, 2, 3, 4, 5, 9, 1, 2, 3, 7, 8, 1, 2, 3])
    assert lookup.propose(2) == [7, 8]  # the latest earlier "1 2 3" is followed by 7 8, not 4 5
    assert lookup.propose(10) == [7, 8, 1, 2, 3]  # the continuation may run into the suffix itself


def test_prefers_the_longest_suffix_that_recurs() -> None:
    lookup = PromptLookup([5, 6, 1, 7, 6, 1, 4, 0, 1], longest=3)
    assert lookup.propose(1) == [4]  # only "1" recurs: the latest 1 was followed by 4
    lookup.extend([7])  # "1 7" recurs (at the start), and it beats the later single "7"
    assert lookup.propose(2) == [6, 1]


def test_proposes_nothing_without_a_recurrence_or_a_limit() -> None:
    assert PromptLookup([1, 2, 3, 4]).propose(4) == []
    assert PromptLookup([]).propose(4) == []
    assert PromptLookup([1, 2, 1]).propose(0) == []


def test_never_matches_its_own_suffix_and_respects_the_shortest_length() -> None:
    lookup = PromptLookup([3, 3], shortest=1)
    assert lookup.propose(3) == [3]  # the first 3 was followed by a 3
    assert PromptLookup([8, 1, 9, 1], shortest=2).propose(3) == []  # only a 1-gram recurs
    with pytest.raises(ValueError):
        PromptLookup(longest=1, shortest=2)


def test_extends_incrementally_as_tokens_are_decided() -> None:
    lookup = PromptLookup([10, 11, 12, 13])
    for token in (20, 10, 11):
        lookup.extend([token])
    assert len(lookup) == 7
    assert lookup.propose(3) == [12, 13, 20]


def _linear(fixed: float, row: float, up_to: int = 200) -> StepCost:
    """A measured cost: steps of every row count up to up_to, fixed + rows * row seconds each."""
    cost = StepCost()
    for rows in range(1, up_to + 1):
        for _ in range(3):
            cost.record(rows, fixed + rows * row)
    return cost


def test_a_sequence_that_accepts_verifies_more_and_fewer_beside_many() -> None:
    budget = SpeculationBudget(longest=8)
    good = Acceptance()
    for _ in range(20):
        good.record(proposed=4, accepted=3)  # three in four: a = 0.75
    cheap = _linear(0.010, 0.001)
    alone, crowded = budget.limit(good, 1, 1.0, cheap), budget.limit(good, 16, 16.0, cheap)
    assert alone >= 4
    assert 0 < crowded < alone
    assert budget.limit(good, 1, 1.0, _linear(0.010, 0.008)) < alone  # dear rows: fewer of them


def _gemma_like() -> StepCost:
    """As measured on Gemma 3 270M: 16 ms for one row, 34 ms for two, 5 ms for each row beyond."""
    cost = StepCost()
    for _ in range(3):
        cost.record(1, 0.016)
        for rows in range(2, 10):
            cost.record(rows, 0.034 + 0.005 * (rows - 2))
    return cost


def test_a_step_that_costs_double_for_a_second_row_needs_a_long_accepted_proposal() -> None:
    cost = _gemma_like()
    budget = SpeculationBudget(longest=8)
    fair, sure = Acceptance(), Acceptance()
    for _ in range(30):
        fair.record(proposed=4, accepted=2)
        sure.record(proposed=8, accepted=8)
    assert budget.limit(fair, 1, 1.0, cost) == 0  # two rows cost double: a fair proposal does not pay
    assert budget.limit(sure, 1, 1.0, cost) == 8


def test_a_sequence_whose_proposals_fail_stops_and_probes_with_a_small_share_of_its_time() -> None:
    budget = SpeculationBudget(probe_every=4, probe_share=0.02)
    bad = Acceptance()
    for _ in range(20):
        bad.record(proposed=2, accepted=0)
    cheap = _linear(0.010, 0.001)
    assert budget.limit(bad, 1, 1.0, cheap) == 0
    # A probe is the proposal that pays were it accepted (8 tokens on cheap rows: 8 ms more than the step's 11 ms),
    # once the steps without one took 50 times its cost.
    bad.idle_steps = 36
    assert budget.limit(bad, 1, 1.0, cheap) == 0
    bad.idle_steps = 37
    assert budget.limit(bad, 1, 1.0, cheap) == 8
    # Dear rows make a probe rarer: 7 tokens (what pays best there) add 48 ms to a 16 ms step.
    dear = _gemma_like()
    bad.idle_steps = 149
    assert budget.limit(bad, 1, 1.0, dear) == 0
    bad.idle_steps = 151
    assert budget.limit(bad, 1, 1.0, dear) == 7
    assert (bad.proposed, bad.accepted) == (40, 0)
    bad.idle_steps = 0
    assert SpeculationBudget.eager().limit(bad, 1, 1.0, dear) == 7  # always probes


def test_a_new_sequence_starts_from_the_worker_s_acceptance() -> None:
    cost, budget = _gemma_like(), SpeculationBudget()
    worker = WorkerAcceptance()
    assert budget.limit(worker.new_sequence(), 1, 1.0, cost) == 0  # one in two: nothing pays on these rows
    for _ in range(20):  # a worker re-emitting its prompts: nearly every proposal right
        worker.record(proposed=8, accepted=8)
    fresh = worker.new_sequence()
    assert (fresh.rate > 0.9, fresh.proposed, fresh.accepted) == (True, 0, 0)
    assert budget.limit(fresh, 1, 1.0, cost) == 8
    for _ in range(4):
        fresh.record(proposed=8, accepted=0)
    assert fresh.rate < 0.5  # its own failures soon outweigh where it started
    for _ in range(200):
        worker.record(proposed=4, accepted=0)
    assert worker.new_sequence().rate < 0.1


@pytest.mark.parametrize("bad", [dict(longest=0), dict(probe_every=-1), dict(probe_share=0.0), dict(hopeful_rate=0)])
def test_a_budget_that_could_not_work_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="speculation budget"):
        SpeculationBudget(**bad)  # type: ignore[arg-type]


def test_acceptance_forgets_old_steps() -> None:
    record = Acceptance()
    for _ in range(30):
        record.record(proposed=4, accepted=0)
    low = record.rate
    for _ in range(30):
        record.record(proposed=4, accepted=4)
    assert low < 0.1 < 0.9 < record.rate


PROBABILITIES = {0: 0.05, 1: 0.1, 2: 0.3, 3: 0.25, 4: 0.2, 5: 0.1}


def _draw(rng: random.Random) -> Sampled:
    return Sampled(rng.choices(list(PROBABILITIES), weights=list(PROBABILITIES.values()))[0])


def _biased_verify(draw: Callable[[int], Sampled], first_row: int, proposal: list[int], rng: random.Random) -> int:
    """A wrong rule: keeps the proposed token a little more often than the model would choose it."""
    if rng.random() < 0.1:
        return proposal[0]
    return draw(first_row).token


@pytest.mark.parametrize("proposed", [2, 0])  # a likely token, and an unlikely one
def test_sampling_through_verification_keeps_the_model_distribution(proposed: int) -> None:
    rng = random.Random(7)
    first = Counter(verify(lambda _row: _draw(rng), 0, [proposed, 4])[0].token for _ in range(4000))
    assert fits(first, PROBABILITIES)
    biased = Counter(_biased_verify(lambda _row: _draw(rng), 0, [proposed, 4], rng) for _ in range(4000))
    assert not fits(biased, PROBABILITIES)  # the test can tell a rule that changes the distribution


def test_verification_stops_at_the_first_token_the_model_does_not_choose() -> None:
    choices = {10: 5, 11: 6, 12: 9, 13: 1}  # row -> the sampler's token there
    drawn: list[int] = []

    def draw(row: int) -> Sampled:
        drawn.append(row)
        return Sampled(choices[row])

    def decided(proposal: list[int]) -> list[int]:
        return [s.token for s in verify(draw, 10, proposal)]

    assert decided([5, 6, 7]) == [5, 6, 9]  # the model's own token replaces the first wrong one
    assert drawn == [10, 11, 12]
    assert decided([]) == [5]
    assert decided([5, 6, 9]) == [5, 6, 9, 1]  # all accepted: one more from the last row


def test_step_cost_interpolates_what_it_did_not_see_and_falls_back_on_a_prior() -> None:
    cost = StepCost(prior_row_ratio=0.5)
    assert cost.seconds(3) == 2.0  # nothing measured: relative units, 1 + 0.5 per row beyond the first
    for _ in range(3):
        cost.record(1, 0.010)
        cost.record(5, 0.030)
    assert cost.seconds(1) == pytest.approx(0.010)
    assert cost.seconds(3) == pytest.approx(0.020)  # between two measured counts
    assert cost.seconds(7) == pytest.approx(0.030 + 2 * 0.5 * 0.010)  # beyond them: the prior per row
    cost.record(9, 1.0)  # seen once: not settled yet, not trusted
    assert cost.seconds(9) == pytest.approx(0.030 + 4 * 0.5 * 0.010)


def test_step_cost_follows_drift() -> None:
    cost = StepCost(weight=0.2)
    for _ in range(3):
        cost.record(2, 0.010)
    for _ in range(40):
        cost.record(2, 0.020)
    assert cost.seconds(2) == pytest.approx(0.020, rel=0.01)
