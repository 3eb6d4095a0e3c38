"""How many groups a pipeline's first stage splits its decoding sessions into, one step of each in flight.

Groups keep the stages busy together: while the stages after the first compute group A, the first
computes group B. That pays where stages cost about the same. It loses where one stage costs most of
a step and pays mostly per step rather than per row: Gemma 3 270M's last stage reads its 262,144-row
output head once per step, so two steps of 4 rows cost it 2 x 65 ms where one of 8 costs 93 ms, and
at 8 streams two stages in groups served 0.65x the whole model against about 0.95x in lock-step. So
the first stage compares the choices by the step times it measured and takes the fastest.
"""

from __future__ import annotations

from collections.abc import Callable

Seconds = Callable[[int], float]  # a step's seconds by its rows


def round_seconds(sessions: int, groups: int, first: Seconds, after: Seconds, slowest_after: Seconds) -> float:
    """Seconds for every session to get a token with `groups` steps in flight: each stage computes every
    group once, and no group comes back sooner than its own trip through the stages. first: the first
    stage's step; after: the later stages' steps together; slowest_after: the slowest later stage's step."""
    rows = -(-sessions // groups)
    trip = first(rows) + after(rows)
    return max(groups * max(first(rows), slowest_after(rows)), trip)


def best_group_count(sessions: int, most: int, first: Seconds, after: Seconds, slowest_after: Seconds) -> int:
    """The number of groups, 1 to `most`, that decodes `sessions` sessions in the least time per token."""
    choices = range(1, max(1, min(most, sessions)) + 1)
    return min(choices, key=lambda g: (round_seconds(sessions, g, first, after, slowest_after), -g))
