"""Pure search for the pipeline whose slowest stage, compute plus the link into the next stage, is fastest."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# (node index, layer start, layer end) per stage, in layer order
Placement = tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class StageCosts:
    """A model's layers on some nodes (by index), in seconds per token."""

    n_layers: int
    per_layer_s: Sequence[float]  # of each node
    head_layers: float  # the last stage's head, in layers of its node's work
    link_s: Sequence[Sequence[float]]  # [from][to]: one token's activations crossing the link
    fits: Callable[[int, int, int], bool]  # whether node holds layers [start, end) in memory
    loadable: Callable[[int, int], bool]  # whether layers [start, end) make a stage llama.cpp loads

    def stage_seconds(self, node: int, start: int, end: int, following: int | None) -> float:
        """A stage's time per token: its layers (and the head if last), then the link to the next stage."""
        head = self.head_layers if end == self.n_layers else 0.0
        link = self.link_s[node][following] if following is not None else 0.0
        return self.per_layer_s[node] * (end - start + head) + link


def bottleneck(costs: StageCosts, placement: Placement) -> float:
    """Seconds per token of the slowest stage: a pipeline with enough groups in flight runs at its pace."""
    following = [*(node for node, _, _ in placement[1:]), None]
    return max(costs.stage_seconds(n, s, e, f) for (n, s, e), f in zip(placement, following, strict=True))


def _memory_reach(costs: StageCosts) -> list[list[int]]:
    """For each node and start, the furthest end its memory holds (start when not even one layer fits)."""
    n = costs.n_layers
    reach = []
    for node in range(len(costs.per_layer_s)):
        row = []
        for start in range(n):
            lo, hi = start, n  # bytes grow with the end, so what fits is a prefix of the ends
            while lo < hi:
                mid = (lo + hi + 1) // 2
                lo, hi = (mid, hi) if costs.fits(node, start, mid) else (lo, mid - 1)
            row.append(lo)
        reach.append(row)
    return reach


def _first_loadable_ends(costs: StageCosts) -> list[int]:
    """For each start, the end of the shortest stage from it that loads (n + 1: none); every longer one loads."""
    n = costs.n_layers
    return [next((e for e in range(s + 1, n + 1) if costs.loadable(s, e)), n + 1) for s in range(n)]


def _within(
    costs: StageCosts, memory: list[list[int]], loads_from: list[int], k: int, limit: float
) -> Placement | None:
    """k stages each within limit seconds, over every subset and order of the nodes: a DP over (nodes used, the
    last of them) of the layers the last one's stage may start at (a bit mask), then a walk back for one placement."""
    n, m = costs.n_layers, len(costs.per_layer_s)
    starts = {(1 << j, j): 1 for j in range(m)}
    # (mask, last) -> (low, high, the stage before) for each range of its starts that stage reached
    came_from: dict[tuple[int, int], list[tuple[int, int, tuple[int, int, int]]]] = {}
    for mask in range(1, 1 << m):
        used = mask.bit_count()
        if used > k:
            continue
        for last in (j for j in range(m) if (mask, j) in starts):
            begins = _useful_begins(starts[(mask, last)], loads_from)
            if used == k:
                for begin in begins:
                    fits = costs.fits(last, begin, n) and costs.loadable(begin, n)
                    if fits and costs.stage_seconds(last, begin, n, None) <= limit:
                        return _walk_back(came_from, (mask, last, begin), n)
                continue
            for j in (j for j in range(m) if not mask >> j & 1):
                room = (limit - costs.link_s[last][j]) / costs.per_layer_s[last] * (1 + 1e-12)
                if room < 1:
                    continue
                layers = n if math.isinf(room) else math.floor(room)
                key = (mask | 1 << j, j)
                for begin in begins:
                    low = max(begin + 1, loads_from[begin])
                    high = min(memory[last][begin], begin + layers, n - (k - used))
                    if high >= low and ((1 << (high + 1)) - (1 << low)) & ~starts.get(key, 0):
                        starts[key] = starts.get(key, 0) | ((1 << (high + 1)) - (1 << low))
                        came_from.setdefault(key, []).append((low, high, (mask, last, begin)))
    return None


def _useful_begins(starts: int, loads_from: list[int]) -> list[int]:
    """The starts worth trying, latest first: a later start leaves its stage less work, but may leave it unable
    to load (a sliding-window model's global layer alone), so earlier ones are kept down to the first start from
    which every stage loads; that one serves better than any before it."""
    begins = []
    for begin in range(starts.bit_length() - 1, -1, -1):
        if starts >> begin & 1:
            begins.append(begin)
            if loads_from[begin] == begin + 1:
                break
    return begins


def _walk_back(
    came_from: dict[tuple[int, int], list[tuple[int, int, tuple[int, int, int]]]], key: tuple[int, int, int], n: int
) -> Placement:
    stages, end = [], n
    while True:
        mask, node, begin = key
        stages.append((node, begin, end))
        parent = next((p for low, high, p in came_from.get((mask, node), []) if low <= begin <= high), None)
        if parent is None:
            return tuple(reversed(stages))
        key, end = parent, begin


def _candidate_limits(costs: StageCosts) -> list[float]:
    """Every time some stage can take: the bottleneck is one of them."""
    n, m = costs.n_layers, len(costs.per_layer_s)
    times = {costs.per_layer_s[a] * (c + costs.head_layers) for a in range(m) for c in range(1, n + 1)}
    times |= {costs.per_layer_s[a] * c + costs.link_s[a][b] for a in range(m) for b in range(m) for c in range(1, n)}
    return sorted(times)


def fastest_pipeline(costs: StageCosts, k: int) -> Placement | None:
    """k stages on k of the nodes with the smallest bottleneck; None when memory allows no k-stage pipeline."""
    memory, loads_from = _memory_reach(costs), _first_loadable_ends(costs)
    if _within(costs, memory, loads_from, k, math.inf) is None:
        return None
    limits = _candidate_limits(costs)
    lo, hi = 0, len(limits) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if _within(costs, memory, loads_from, k, limits[mid]) is not None else (mid + 1, hi)
    return _within(costs, memory, loads_from, k, limits[lo]) or _within(costs, memory, loads_from, k, math.inf)
