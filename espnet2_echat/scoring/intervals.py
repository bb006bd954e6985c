"""How far an accuracy is from chance: the Wilson score interval and two chance levels.

An accuracy measured on n utterances is a binomial proportion; its 95 % Wilson score
interval (Wilson 1927; Agresti & Coull 1998, eq. 2) stays inside [0, 1] and is sound for
small n and proportions near 0 or 1, where the normal ("Wald") interval is not. The chance
levels a classifier must beat: the *majority share* (always answering the most frequent
reference class) and *uniform* (1 / the number of reference classes: guessing at random
among the classes the test set holds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Tuple

Z_95 = 1.959963984540054  # the 97.5 % quantile of the standard normal


def wilson_interval(successes: int, n: int, z: float = Z_95) -> Tuple[float, float]:
    """The Wilson score interval of ``successes`` out of ``n`` (proportions in [0, 1])."""
    if n <= 0:
        raise ValueError(f"the Wilson interval needs n > 0 trials, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n={n}], got {successes}")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class ChanceComparison:
    """An accuracy beside its interval and the chance levels (all proportions in [0, 1])."""

    n: int
    correct: int
    accuracy: float
    low: float  # 95 % Wilson interval
    high: float
    majority_share: float  # share of the most frequent reference class
    uniform: float  # 1 / number of reference classes
    num_classes: int

    @property
    def above_chance(self) -> bool:
        """The whole interval lies above both chance levels."""
        return self.low > max(self.majority_share, self.uniform)


def compare_with_chance(confusion: Sequence[Sequence[int]]) -> ChanceComparison:
    """Accuracy, Wilson interval and chance levels of a confusion matrix whose rows are
    the reference classes and whose first ``len(rows)`` columns are the same classes (in
    the same order; further columns are predictions outside them, e.g. ``<NO_LABEL>``)."""
    rows = [list(r) for r in confusion]
    if not rows:
        raise ValueError("an empty confusion matrix has no accuracy")
    if any(len(r) < len(rows) for r in rows):
        raise ValueError("every confusion row needs a column for each reference class")
    totals = [sum(r) for r in rows]
    n = sum(totals)
    if n == 0:
        raise ValueError("the confusion matrix counts no utterance")
    correct = sum(rows[i][i] for i in range(len(rows)))
    classes = sum(1 for t in totals if t > 0)
    low, high = wilson_interval(correct, n)
    return ChanceComparison(
        n=n,
        correct=correct,
        accuracy=correct / n,
        low=low,
        high=high,
        majority_share=max(totals) / n,
        uniform=1.0 / classes,
        num_classes=classes,
    )
