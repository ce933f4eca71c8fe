import pytest

from bsnn_bindsnet.analysis.stats import (accuracy_interval, format_accuracy, intervals_overlap,
                                          wilson_interval)


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
