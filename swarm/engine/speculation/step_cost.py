"""StepCost: how long a decode step of n rows with logits takes on this worker, as measured.

Whether proposed tokens pay depends on what rows cost, which differs by model and PC and is not
linear: on Gemma 3 270M (a 262,144-token output head) a step of two rows takes about twice one of
one row, while each row beyond costs a third of that (llama.cpp multiplies one row and several
rows differently). So the engine keeps, per row count, a running mean of the decode steps it
ran; a count not seen yet is estimated from its neighbours, or from a prior until one is known.
"""

from __future__ import annotations

from bisect import insort


class StepCost:
    def __init__(self, prior_row_ratio: float = 0.25, weight: float = 0.1, settled: int = 3) -> None:
        """prior_row_ratio: what a row costs beside one row's step, until measured; weight: of each new step."""
        self.prior_row_ratio = prior_row_ratio
        self._weight = weight
        self._settled = settled
        self._mean: dict[int, float] = {}
        self._count: dict[int, int] = {}
        self._known: list[int] = []  # row counts with `settled` steps measured, in order (asked every step)

    def record(self, rows: int, seconds: float) -> None:
        """A decode step of `rows` rows, each with logits, that took `seconds`."""
        seen = self._count.get(rows, 0)
        self._count[rows] = seen + 1
        if seen + 1 == self._settled:
            insort(self._known, rows)
        if seen == 0:
            self._mean[rows] = seconds
        else:  # the first few steps count equally, later ones as a running mean that follows drift
            weight = max(self._weight, 1.0 / (seen + 1))
            self._mean[rows] += weight * (seconds - self._mean[rows])

    @property
    def settled(self) -> bool:
        """Whether some row count has been measured often enough that seconds() answers in seconds."""
        return bool(self._known)

    def seconds(self, rows: int) -> float:
        """The expected duration of a step of `rows` rows (relative units until any step was measured)."""
        if self._count.get(rows, 0) >= self._settled:
            return self._mean[rows]
        known = self._known
        below = [r for r in known if r < rows]
        above = [r for r in known if r > rows]
        if below and above:
            lo, hi = below[-1], above[0]
            share = (rows - lo) / (hi - lo)
            return self._mean[lo] + share * (self._mean[hi] - self._mean[lo])
        if below:
            lo = below[-1]
            base = self._mean[known[0]] / (1.0 + self.prior_row_ratio * (known[0] - 1))
            return self._mean[lo] + (rows - lo) * self.prior_row_ratio * base
        if above:
            hi = above[0]
            return self._mean[hi] * (1.0 + self.prior_row_ratio * (rows - 1)) / (1.0 + self.prior_row_ratio * (hi - 1))
        return 1.0 + self.prior_row_ratio * (rows - 1)
