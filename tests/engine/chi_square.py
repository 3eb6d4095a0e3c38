"""Chi-square tests for sampled tokens: are two samples (or a sample and known probabilities) one distribution?

No SciPy: the critical value comes from the Wilson-Hilferty approximation, close enough for a test
that takes alpha = 0.001 and categories with at least five expected draws each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping

Z_ALPHA_0001 = 3.0902  # the standard normal's 0.999 quantile


def critical_value(degrees: int, z: float = Z_ALPHA_0001) -> float:
    """The chi-square distribution's upper quantile at the normal quantile z (Wilson-Hilferty)."""
    term = 2.0 / (9.0 * degrees)
    return float(degrees * (1.0 - term + z * term**0.5) ** 3)


def same_distribution(a: Counter[Hashable], b: Counter[Hashable], min_expected: float = 5.0) -> bool:
    """Homogeneity test of two samples; rare categories (under min_expected in either) pool into one."""
    total_a, total_b = sum(a.values()), sum(b.values())
    total = total_a + total_b
    cells: list[tuple[int, int]] = []
    pooled = (0, 0)
    for key in set(a) | set(b):
        both = a[key] + b[key]
        if min(both * total_a, both * total_b) / total < min_expected:
            pooled = (pooled[0] + a[key], pooled[1] + b[key])
        else:
            cells.append((a[key], b[key]))
    if sum(pooled):
        cells.append(pooled)
    if len(cells) < 2:
        return True
    statistic = 0.0
    for count_a, count_b in cells:
        both = count_a + count_b
        expected_a, expected_b = both * total_a / total, both * total_b / total
        statistic += (count_a - expected_a) ** 2 / expected_a + (count_b - expected_b) ** 2 / expected_b
    return statistic <= critical_value(len(cells) - 1)


def fits(sample: Counter[Hashable], probabilities: Mapping[Hashable, float]) -> bool:
    """Goodness of fit of a sample to known probabilities (each category expected at least five times)."""
    total = sum(sample.values())
    statistic = sum((sample[key] - p * total) ** 2 / (p * total) for key, p in probabilities.items())
    if set(sample) - set(probabilities):
        return False
    return statistic <= critical_value(len(probabilities) - 1)
