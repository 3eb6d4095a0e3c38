"""DraftRunner on a real (synthetic) model: greedy guesses ahead of each sequence, kept when taken, redone when not."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import pytest

from swarm.engine.draft_runner import LOST, DraftRunner
from swarm.engine.llama_adapter import LlamaModel
from swarm.engine.speculation.draft_mailbox import DraftProposal
from tests.greedy_check import GreedyReference

PROMPT = "the quick brown fox jumps over"
WAIT_S = 10.0


class Answers:
    """What the runner answers, from its thread, in order."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[str, DraftProposal]] = queue.SimpleQueue()

    def __call__(self, sequence: str, proposal: DraftProposal) -> None:
        self._queue.put((sequence, proposal))

    def until(self, sequence: str, start: int, guesses: int) -> DraftProposal:
        """The first answer for sequence that follows `start` tokens with at least `guesses` guesses."""
        while True:
            seq, proposal = self._queue.get(timeout=WAIT_S)
            if seq == sequence and proposal.start == start and len(proposal.tokens) >= guesses:
                return proposal

    def next(self) -> tuple[str, DraftProposal]:
        return self._queue.get(timeout=WAIT_S)


@pytest.fixture
def model(tiny_model: Path) -> Iterator[LlamaModel]:
    loaded = LlamaModel(tiny_model)
    yield loaded
    loaded.close()


def test_it_guesses_the_model_s_greedy_tokens_and_goes_on_from_those_taken(model: LlamaModel, tiny_model: Path) -> None:
    runner = DraftRunner(model, slots=2, context_per_slot=256, threads=1, lookahead=4)
    runner.start()
    reference = GreedyReference(tiny_model)
    try:
        answers = Answers()
        prompt = model.tokenize(PROMPT)
        runner.tell(1, "a", 0, tuple(prompt), answers)
        first = answers.until("a", len(prompt), 4)
        assert len(first.tokens) == 4  # no further than its lookahead
        reference.check(PROMPT, first.tokens, tolerance=1e-3)
        runner.tell(1, "a", len(prompt), first.tokens[:2], answers)  # the target took two guesses
        second = answers.until("a", len(prompt) + 2, 4)
        assert second.tokens[:2] == first.tokens[2:]  # what it guessed before still holds
        reference.check(PROMPT, [*first.tokens[:2], *second.tokens], tolerance=1e-3)
        other = next(t for t in range(300, 400) if t != second.tokens[0])
        runner.tell(1, "a", len(prompt) + 2, (other,), answers)  # the target decided otherwise
        third = answers.until("a", len(prompt) + 3, 4)
        assert runner.guesses >= 4 + 2 + 4
        context = [*prompt, *first.tokens[:2], other]
        again = DraftRunner(model, slots=1, context_per_slot=256, threads=1, lookahead=4)
        again.start()
        try:  # a fresh draft told that whole context at once guesses the same
            fresh = Answers()
            again.tell(1, "b", 0, tuple(context), fresh)
            assert fresh.until("b", len(context), 4).tokens == third.tokens
        finally:
            again.stop()
    finally:
        runner.stop()
        reference.close()


def test_news_of_a_sequence_it_does_not_hold_is_answered_lost(model: LlamaModel) -> None:
    runner = DraftRunner(model, slots=1, context_per_slot=256, threads=1, lookahead=2)
    runner.start()
    try:
        answers = Answers()
        prompt = tuple(model.tokenize(PROMPT))
        runner.tell(1, "never-told", 5, (7,), answers)
        assert answers.next() == ("never-told", LOST)
        runner.tell(1, "a", 0, prompt, answers)
        answers.until("a", len(prompt), 2)
        runner.tell(2, "b", 0, prompt, answers)  # one slot: "a" gives its cells to "b"
        answers.until("b", len(prompt), 2)
        runner.tell(1, "a", len(prompt), (9,), answers)
        assert answers.until("a", 0, 0) == LOST
    finally:
        runner.stop()
