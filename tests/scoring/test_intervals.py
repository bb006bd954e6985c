"""The Wilson interval against published values and a root-finding of its definition, and
the chance levels of a confusion matrix against counts done by hand."""

import math

import pytest

from espnet2_echat.scoring.intervals import compare_with_chance, wilson_interval

# Newcombe (1998), "Two-sided confidence intervals for the single proportion: comparison of
# seven methods", Stat. Med. 17:857-872, table II, method 3 (score, no continuity correction).
NEWCOMBE = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
]


@pytest.mark.parametrize("k,n,low,high", NEWCOMBE)
def test_wilson_matches_newcombe(k, n, low, high):
    lo, hi = wilson_interval(k, n)
    assert lo == pytest.approx(low, abs=1e-4)
    assert hi == pytest.approx(high, abs=1e-4)


def _score_test_bounds(k: int, n: int, z: float = 1.959963984540054):
    """The interval's definition: the p whose score statistic |k/n - p| / sqrt(p(1-p)/n)
    equals z, found by bisection on each side of k/n."""

    def excess(p):
        return abs(k / n - p) - z * math.sqrt(p * (1 - p) / n)

    def bisect(a, b):  # excess(a) > 0 >= excess(b) or the reverse
        for _ in range(200):
            m = (a + b) / 2
            if (excess(m) > 0) == (excess(a) > 0):
                a = m
            else:
                b = m
        return (a + b) / 2

    p = k / n
    low = 0.0 if k == 0 else bisect(1e-15, p)
    high = 1.0 if k == n else bisect(1 - 1e-15, p)
    return low, high


@pytest.mark.parametrize("k,n", [(0, 1), (1, 1), (3, 7), (60, 96), (96, 96), (13, 100), (50, 100)])
def test_wilson_is_the_score_test_inversion(k, n):
    assert wilson_interval(k, n) == pytest.approx(_score_test_bounds(k, n), abs=1e-9)


def test_wilson_refuses_impossible_counts():
    with pytest.raises(ValueError, match="n > 0"):
        wilson_interval(0, 0)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(5, 4)


def test_chance_levels_of_a_confusion_matrix():
    # rows: reference <A> (6 utts), <B> (3), <C> (1); last column: <NO_LABEL>
    conf = [[4, 1, 0, 1], [1, 2, 0, 0], [0, 0, 1, 0]]
    c = compare_with_chance(conf)
    assert (c.n, c.correct, c.num_classes) == (10, 7, 3)
    assert c.accuracy == pytest.approx(0.7)
    assert c.majority_share == pytest.approx(0.6)
    assert c.uniform == pytest.approx(1 / 3)
    assert (c.low, c.high) == pytest.approx(wilson_interval(7, 10))
    assert not c.above_chance  # 0.7 on 10 utterances: the interval reaches below 0.6


def test_above_chance_needs_the_whole_interval_above():
    # 2 balanced classes, 90 of 100 right: interval ~[0.826, 0.945] > 0.5
    assert compare_with_chance([[45, 5], [5, 45]]).above_chance
    # always the majority class: accuracy = majority share, not above chance
    assert not compare_with_chance([[70, 0], [30, 0]]).above_chance
    with pytest.raises(ValueError, match="no utterance"):
        compare_with_chance([[0, 0], [0, 0]])
