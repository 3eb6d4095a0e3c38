"""Slot choice for prompt-prefix reuse is a pure function."""

from swarm.engine.sequence import Slot, choose_slot, common_prefix_length


def test_common_prefix_length() -> None:
    assert common_prefix_length([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix_length([], [1]) == 0
    assert common_prefix_length([1, 2], [1, 2, 3]) == 2


def test_slot_with_longest_shared_prefix_wins() -> None:
    slots = [Slot(0, [1, 9], last_used=5), Slot(1, [1, 2, 3, 4], last_used=1), Slot(2, [], last_used=0)]
    slot, keep = choose_slot(slots, [1, 2, 3, 7, 8]) or (None, 0)
    assert slot is slots[1]
    assert keep == 3


def test_whole_prompt_cached_still_leaves_one_token_to_decode() -> None:
    slots = [Slot(0, [1, 2, 3, 4])]
    assert choose_slot(slots, [1, 2, 3]) == (slots[0], 2)


def test_no_reuse_prefers_least_recently_used_and_busy_slots_are_skipped() -> None:
    busy = Slot(0, [5, 6], last_used=0)
    busy.sequence = object()  # type: ignore[assignment]
    slots = [busy, Slot(1, [7], last_used=9), Slot(2, [8], last_used=3)]
    assert choose_slot(slots, [5, 6, 1]) == (slots[2], 0)
    assert choose_slot([busy], [1]) is None
