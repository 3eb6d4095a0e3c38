"""RowCost: what one more row with logits costs in a decode step, relative to the step's fixed cost, as measured.

A decode step takes about fixed + rows * row seconds: the weights are read once per step, and each
row with logits adds its share of compute (on a small model with a large vocabulary, the output
head makes that share large). The ratio row / fixed decides how many proposed tokens pay. It differs
by model and PC, so it is fitted to the steps this worker ran, forgetting old ones, by least squares;
until the steps vary enough to tell, a prior stands in.
"""

from __future__ import annotations


class RowCost:
    LOWEST, HIGHEST = 0.01, 2.0  # a fit outside these is noise (another process took the cores)

    def __init__(self, prior_ratio: float = 0.25, decay: float = 0.995, min_steps: float = 20.0) -> None:
        self.prior_ratio = prior_ratio
        self._decay = decay
        self._min_steps = min_steps
        self._n = self._x = self._y = self._xx = self._xy = 0.0

    def record(self, rows: int, seconds: float) -> None:
        """A decode step of `rows` rows, each with logits, that took `seconds`."""
        d = self._decay
        self._n = self._n * d + 1.0
        self._x = self._x * d + rows
        self._y = self._y * d + seconds
        self._xx = self._xx * d + rows * rows
        self._xy = self._xy * d + rows * seconds

    @property
    def ratio(self) -> float:
        """row / fixed of the fitted line; the prior while too few or too alike steps were seen."""
        n = self._n
        if n < self._min_steps:
            return self.prior_ratio
        spread = self._xx - self._x * self._x / n
        if spread < 0.25 * n:  # rows hardly varied (a variance under 1/4 row): the slope is not known
            return self.prior_ratio
        slope = (self._xy - self._x * self._y / n) / spread
        intercept = (self._y - slope * self._x) / n
        if intercept <= 0.0:
            return self.HIGHEST if slope > 0 else self.prior_ratio
        return min(max(slope / intercept, self.LOWEST), self.HIGHEST)
