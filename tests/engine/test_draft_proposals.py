"""The pure parts of a draft PC's proposals: when a proposal is fresh for a context, the mailbox, and a DraftLine."""

from __future__ import annotations

import threading

from swarm.engine.draft_line import DraftLine
from swarm.engine.speculation.draft_mailbox import DraftMailbox, DraftProposal, fresh_part


def test_a_proposal_is_fresh_for_the_context_it_followed_and_for_what_it_guessed_right() -> None:
    proposal = DraftProposal(start=3, tokens=(7, 8, 9))
    assert fresh_part(proposal, [1, 2, 3], 5) == [7, 8, 9]
    assert fresh_part(proposal, [1, 2, 3], 2) == [7, 8]  # within the limit
    assert fresh_part(proposal, [1, 2, 3, 7], 5) == [8, 9]  # the target decided 7 as guessed: the rest still holds
    assert fresh_part(proposal, [1, 2, 3, 7, 8], 5) == [9]


def test_a_contradicted_outrun_or_early_proposal_proposes_nothing() -> None:
    proposal = DraftProposal(start=3, tokens=(7, 8, 9))
    assert fresh_part(proposal, [1, 2, 3, 6], 5) == []  # the target decided otherwise
    assert fresh_part(proposal, [1, 2, 3, 7, 8, 9], 5) == []  # the target is past all of it
    assert fresh_part(proposal, [1, 2], 5) == []  # made for a context the target has not reached
    assert fresh_part(proposal, [1, 2, 3], 0) == []
    assert fresh_part(DraftProposal(3, ()), [1, 2, 3], 5) == []


def test_the_mailbox_keeps_the_latest_proposal_per_sequence_and_counts_what_was_taken() -> None:
    mailbox = DraftMailbox()
    assert mailbox.take("a", [1], 4) == []
    mailbox.post("a", DraftProposal(1, (5,)))
    mailbox.post("a", DraftProposal(1, (5, 6)))
    mailbox.post("b", DraftProposal(0, (9,)))
    assert mailbox.take("a", [1], 4) == [5, 6]
    assert mailbox.take("a", [1, 5], 4) == [6]  # taking leaves it for the next step
    assert mailbox.taken == 3
    mailbox.forget("a")
    assert mailbox.take("a", [1], 4) == []
    assert mailbox.take("b", [], 4) == [9]
    mailbox.clear()  # the draft died
    assert mailbox.take("b", [], 4) == []


def test_the_mailbox_takes_posts_from_another_thread() -> None:
    mailbox = DraftMailbox()
    posters = [
        threading.Thread(target=lambda n=n: [mailbox.post(f"s{n}", DraftProposal(0, (i,))) for i in range(500)])
        for n in range(4)
    ]
    for poster in posters:
        poster.start()
    for poster in posters:
        poster.join()
    assert [mailbox.take(f"s{n}", [], 1) for n in range(4)] == [[499]] * 4


def test_a_draft_line_goes_on_from_guesses_the_target_took() -> None:
    line = DraftLine(lookahead=3, room=100)
    assert line.tell(0, [1, 2, 3])
    assert line.wants(10) == [1, 2, 3]  # the prompt, to guess after it
    assert line.decoded_more(3)
    line.guessed(4)
    assert line.guesses == [4]
    assert line.wants(10) == [4]
    assert line.decoded_more(1)
    line.guessed(5)
    assert line.tell(3, [4])  # the target took the first guess
    assert line.guesses == [5]
    assert line.decoded == 4  # nothing to decode again
    assert line.wants(10) == [5]


def test_a_draft_line_cuts_a_wrong_guess_and_everything_after_it() -> None:
    line = DraftLine(lookahead=3, room=100)
    line.tell(0, [1, 2, 3])
    line.decoded_more(3)
    line.guessed(4)
    line.decoded_more(1)
    line.guessed(5)
    assert line.tell(3, [9])  # the target decided 9, not 4
    assert line.line == [1, 2, 3, 9] and line.guesses == []
    assert line.decoded == 3  # the cache keeps the context, not the wrong guess
    assert line.wants(10) == [9]
    assert line.context == [1, 2, 3, 9]  # guessing more later never touches the context
    line.decoded_more(1)
    line.guessed(6)
    assert line.context == [1, 2, 3, 9]


def test_a_draft_line_stops_at_its_lookahead_and_its_room_and_asks_again_after_a_gap() -> None:
    line = DraftLine(lookahead=1, room=100)
    line.tell(0, [1, 2])
    line.decoded_more(2)
    line.guessed(3)
    assert line.wants(10) == []  # one guess ahead is enough
    full = DraftLine(lookahead=5, room=2)
    full.tell(0, [1, 2])
    assert full.wants(10) == []
    assert not line.tell(5, [7])  # it missed positions 3 and 4: it needs the whole context again
    assert line.tell(0, [1, 2, 3])  # a reset with the whole context, its guess included: decoded up to the guess
    assert line.decoded == 2 and line.wants(10) == [3]
