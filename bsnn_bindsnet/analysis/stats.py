r"""Uncertainty of measured accuracies: binomial 95 % intervals.

An accuracy measured on :math:`n` test images is a binomial proportion; its standard error at
92 % is 0.86 points for :math:`n = 1000` and 0.27 for :math:`n = 10000`. Every accuracy the
experiments report on fewer than 10,000 images carries the Wilson score interval
(Wilson 1927; Brown, Cai & DasGupta 2001 recommend it over the normal approximation, which
misbehaves near 0 and 1). Pure functions, no torch.
"""

from __future__ import annotations

import math

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
