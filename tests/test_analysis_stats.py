import pytest

from bsnn_bindsnet.analysis.stats import (accuracy_interval, compare_paired,
                                          compare_predictions, format_accuracy,
                                          intervals_overlap, mcnemar_exact,
                                          paired_difference_interval, wilson_interval)


def test_wilson_interval_by_hand():
    # p = 0.5, n = 10, z = 1.96: centre 0.5, half-width 1.96*sqrt(0.025 + z^2/400)/(1 + z^2/10)
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4)
    assert high == pytest.approx(0.7634, abs=1e-4)


def test_wilson_interval_stays_inside_0_1_and_is_not_degenerate_at_the_ends():
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0.1 < high < 0.2     # 0/20 still leaves room for ~16 % errors
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and 0.8 < low < 0.9


def test_accuracy_interval_shrinks_with_n():
    narrow = accuracy_interval(0.92, 10_000)
    wide = accuracy_interval(0.92, 1_000)
    assert wide[0] < narrow[0] < 0.92 < narrow[1] < wide[1]
    assert narrow[1] - narrow[0] == pytest.approx(2 * 1.96 * (0.92 * 0.08 / 10_000) ** 0.5,
                                                  rel=0.01)


def test_format_accuracy_adds_the_interval_below_10000_samples():
    assert format_accuracy(0.9205, 10_000) == "92.05"
    assert format_accuracy(0.5, 10) == "50.00 [23.7, 76.3]"


def test_intervals_overlap():
    assert intervals_overlap(0.865, 0.875, 1000)
    assert not intervals_overlap(0.80, 0.90, 1000)


@pytest.mark.parametrize("k, n", [(1, 0), (-1, 5), (6, 5)])
def test_wilson_interval_rejects_impossible_counts(k, n):
    with pytest.raises(ValueError):
        wilson_interval(k, n)


# ------------------------------------------------------------------ paired comparisons


def test_mcnemar_exact_by_hand():
    # 1 vs 6 discordant: P(X <= 1) for X ~ Bin(7, 1/2) = (1 + 7) / 128; two-sided: 16 / 128
    assert mcnemar_exact(1, 6) == 16 / 128
    assert mcnemar_exact(6, 1) == 16 / 128
    # 0 vs 6: 2 * (1 / 64)
    assert mcnemar_exact(0, 6) == 2 / 64
    # 10 vs 4: 2 * (C(14,0) + C(14,1) + C(14,2) + C(14,3) + C(14,4)) / 2^14 = 2 * 1471 / 16384
    assert mcnemar_exact(10, 4) == pytest.approx(2 * 1471 / 16384, rel=1e-15)
    # equal counts and no discordant pair: no evidence at all
    assert mcnemar_exact(5, 5) == 1.0 and mcnemar_exact(0, 0) == 1.0


def test_mcnemar_exact_stays_finite_on_ten_thousand_discordant_pairs():
    p = mcnemar_exact(5200, 4800)       # 2^10000 overflows a float; exact integers do not
    assert 0 < p < 1e-4
    with pytest.raises(ValueError, match="non-negative integers"):
        mcnemar_exact(-1, 3)


def test_paired_difference_interval_by_hand():
    # n = 100, 10 vs 4 discordant: a* = 10.5, b* = 4.5, n* = 102, d* = 6/102,
    # se = sqrt(15 - 36/102) / 102 = sqrt(14.647059) / 102 = 0.0375211
    low, high = paired_difference_interval(10, 4, 100)
    assert low == pytest.approx(6 / 102 - 1.959964 * 0.0375211, abs=1e-6)    # -0.014717
    assert high == pytest.approx(6 / 102 + 1.959964 * 0.0375211, abs=1e-6)   # 0.132364
    with pytest.raises(ValueError, match="at most"):
        paired_difference_interval(60, 50, 100)


def test_compare_paired_on_a_hand_built_table():
    # 100 samples: both right 80, a only 10, b only 4, neither 6
    a = [1] * 80 + [1] * 10 + [0] * 4 + [0] * 6
    b = [1] * 80 + [0] * 10 + [1] * 4 + [0] * 6
    r = compare_paired(a, b)
    assert (r.n, r.both, r.a_only, r.b_only, r.neither) == (100, 80, 10, 4, 6)
    assert r.difference == pytest.approx(0.90 - 0.84)
    assert r.p_value == pytest.approx(2 * 1471 / 16384)
    assert r.interval == paired_difference_interval(10, 4, 100)
    assert r.verdict() == "cannot be told apart"       # p = 0.18
    # the same accuracies (90 vs 84 %) with the discordant pairs all one way: a 6-0 split
    a2 = [1] * 84 + [1] * 6 + [0] * 10
    b2 = [1] * 84 + [0] * 6 + [0] * 10
    r2 = compare_paired(a2, b2)
    assert r2.p_value == 2 / 64 and r2.verdict(names=("SIF", "RIF")) == "SIF better"
    with pytest.raises(ValueError, match="same samples"):
        compare_paired([1, 0], [1])


def test_compare_predictions_scores_both_against_the_labels():
    labels = [0, 1, 2, 3, 4]
    r = compare_predictions([0, 1, 2, 0, 0], [0, 1, 0, 3, 0], labels)
    assert (r.both, r.a_only, r.b_only, r.neither) == (2, 1, 1, 1)
    assert r.difference == 0 and r.p_value == 1.0
    with pytest.raises(ValueError, match="differ in length"):
        compare_predictions([0, 1], [0, 1], [0])
