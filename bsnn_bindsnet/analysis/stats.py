r"""Uncertainty of measured accuracies: binomial 95 % intervals, and paired tests.

An accuracy measured on :math:`n` test images is a binomial proportion; its standard error at
92 % is 0.86 points for :math:`n = 1000` and 0.27 for :math:`n = 10000`. Every accuracy the
experiments report on fewer than 10,000 images carries the Wilson score interval
(Wilson 1927; Brown, Cai & DasGupta 2001 recommend it over the normal approximation, which
misbehaves near 0 and 1). Two networks scored on the same images are compared with a paired
test instead (:func:`compare_paired`: McNemar's exact test on the images where exactly one is
right), not by whether two such intervals overlap. Pure functions, no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Z95 = 1.959963984540054  # the 97.5 % quantile of the standard normal


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``successes / n``.

    Args:
        successes: Number of correct samples (an accuracy times ``n`` is accepted and rounded).
        n: Number of samples (> 0).
        z: Normal quantile (default: 95 % two-sided).

    Returns:
        ``(low, high)`` as fractions in ``[0, 1]``.
    """
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    k = round(successes)
    if not 0 <= k <= n:
        raise ValueError(f"successes must lie in [0, {n}], got {successes}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_interval(accuracy: float, n: int, z: float = Z95) -> tuple[float, float]:
    """:func:`wilson_interval` of an accuracy (fraction) measured on ``n`` samples."""
    return wilson_interval(accuracy * n, n, z)


def format_accuracy(accuracy: float, n: int) -> str:
    """``"92.05"`` for ``n >= 10000``, else ``"92.05 [90.9, 93.1]"`` (%, 95 % Wilson)."""
    if n >= 10_000:
        return f"{100 * accuracy:.2f}"
    low, high = accuracy_interval(accuracy, n)
    return f"{100 * accuracy:.2f} [{100 * low:.1f}, {100 * high:.1f}]"


def intervals_overlap(a: float, b: float, n: int) -> bool:
    """Whether the 95 % intervals of two accuracies measured on ``n`` samples each overlap
    (a conservative test: non-overlapping intervals imply a difference at well below 5 %)."""
    lo_a, hi_a = accuracy_interval(a, n)
    lo_b, hi_b = accuracy_interval(b, n)
    return lo_a <= hi_b and lo_b <= hi_a


# ------------------------------------------------------------------ paired comparisons
#
# Two networks scored on the same images are paired: what decides between them is the images
# on which exactly one of them is right (the discordant pairs), not the two accuracies. Under
# "both are equally accurate" each discordant image is a fair coin, so McNemar's exact test is
# a two-sided binomial test with p = 1/2 on them (McNemar 1947; the exact form, as Fagerland,
# Lydersen & Laake 2013 recommend for small counts). The difference of the two accuracies gets
# the Agresti-Min (2005) interval: the Wald interval of a paired difference after adding 1/2
# to each cell of the 2x2 table.


@dataclass(frozen=True)
class PairedComparison:
    """Two classifiers on the same ``n`` samples (``a`` and ``b``).

    Attributes:
        n: Samples.
        both: Both right.
        a_only: ``a`` right, ``b`` wrong (discordant).
        b_only: ``b`` right, ``a`` wrong (discordant).
        neither: Both wrong.
        difference: ``acc(a) - acc(b)`` as a fraction, ``(a_only - b_only) / n``.
        interval: 95 % Agresti-Min interval of ``difference``.
        p_value: Two-sided exact McNemar p-value.
    """

    n: int
    both: int
    a_only: int
    b_only: int
    neither: int
    difference: float
    interval: tuple[float, float]
    p_value: float

    def verdict(self, alpha: float = 0.05, names: tuple[str, str] = ("a", "b")) -> str:
        """``"a better"``, ``"b better"`` (p < ``alpha``) or ``"cannot be told apart"``."""
        if self.p_value >= alpha:
            return "cannot be told apart"
        return f"{names[0] if self.a_only > self.b_only else names[1]} better"

    def summary(self) -> dict[str, float | int | str]:
        """JSON-ready fields plus the verdict at 5 %."""
        return {"n": self.n, "both": self.both, "a_only": self.a_only, "b_only": self.b_only,
                "neither": self.neither, "difference": self.difference,
                "interval": list(self.interval), "p_value": self.p_value,
                "verdict": self.verdict()}


def mcnemar_exact(a_only: int, b_only: int) -> float:
    r"""Two-sided exact McNemar p-value of ``a_only`` vs ``b_only`` discordant pairs:
    :math:`\min(1, 2 P(X \le \min(a, b)))` with :math:`X \sim \mathrm{Bin}(a + b, 1/2)`,
    computed in exact integer arithmetic (1.0 when there is no discordant pair)."""
    if a_only < 0 or b_only < 0 or a_only != int(a_only) or b_only != int(b_only):
        raise ValueError(f"discordant counts must be non-negative integers, got "
                         f"{a_only} and {b_only}")
    a, b = int(a_only), int(b_only)
    m = a + b
    if m == 0:
        return 1.0
    tail = sum(math.comb(m, k) for k in range(min(a, b) + 1))
    return min(1.0, 2 * tail / 2 ** m)  # int / int: correctly rounded, no overflow


def paired_difference_interval(a_only: int, b_only: int, n: int,
                               z: float = Z95) -> tuple[float, float]:
    r"""Agresti-Min interval of :math:`(a - b)/n`, the difference of two paired accuracies:
    with :math:`a^* = a + 1/2`, :math:`b^* = b + 1/2`, :math:`n^* = n + 2`,
    :math:`d^* = (a^* - b^*)/n^*` and
    :math:`\mathrm{se} = \sqrt{a^* + b^* - (a^* - b^*)^2/n^*}/n^*`: :math:`d^* \pm z\,\mathrm{se}`,
    clipped to :math:`[-1, 1]`."""
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}")
    if a_only < 0 or b_only < 0 or a_only + b_only > n:
        raise ValueError(f"discordant counts {a_only} + {b_only} must be >= 0 and at most "
                         f"n = {n}")
    a, b, m = a_only + 0.5, b_only + 0.5, n + 2
    d = (a - b) / m
    se = math.sqrt(a + b - (a - b) ** 2 / m) / m
    return max(-1.0, d - z * se), min(1.0, d + z * se)


def compare_paired(correct_a: Sequence[Any], correct_b: Sequence[Any]) -> PairedComparison:
    """McNemar's exact test and the paired difference of two per-sample correctness vectors
    (bools or 0/1, one entry per sample, the same samples in the same order; tensors and
    arrays are accepted)."""
    a = [bool(x) for x in _flat(correct_a)]
    b = [bool(x) for x in _flat(correct_b)]
    if len(a) != len(b):
        raise ValueError(f"paired comparison needs the same samples: {len(a)} vs {len(b)} "
                         "entries")
    if not a:
        raise ValueError("paired comparison of zero samples")
    both = sum(x and y for x, y in zip(a, b))
    a_only = sum(x and not y for x, y in zip(a, b))
    b_only = sum(y and not x for x, y in zip(a, b))
    n = len(a)
    return PairedComparison(n, both, a_only, b_only, n - both - a_only - b_only,
                            (a_only - b_only) / n, paired_difference_interval(a_only, b_only, n),
                            mcnemar_exact(a_only, b_only))


def compare_predictions(pred_a: Sequence[Any], pred_b: Sequence[Any],
                        labels: Sequence[Any]) -> PairedComparison:
    """:func:`compare_paired` of two prediction vectors against the same ``labels``."""
    pa, pb, y = (list(_flat(v)) for v in (pred_a, pred_b, labels))
    if not len(pa) == len(pb) == len(y):
        raise ValueError(f"predictions and labels differ in length: {len(pa)}, {len(pb)}, "
                         f"{len(y)}")
    return compare_paired([int(p) == int(t) for p, t in zip(pa, y)],
                          [int(p) == int(t) for p, t in zip(pb, y)])


def _flat(values: Any) -> Sequence[Any]:
    """A flat list of a sequence, numpy array or tensor (no torch import here)."""
    if hasattr(values, "tolist"):
        values = values.tolist()
    if any(isinstance(v, (list, tuple)) for v in values):
        raise ValueError("expected one value per sample (a flat vector), got nested values")
    return list(values)
