"""Confidence intervals for the numbers an evaluation reports.

Every reported number is a mean over held-out images, so two intervals cover
them all: Wilson's score interval for shares (accuracy, agreement, share
within d degrees) and a normal interval for means of continuous values
(angular error, L1). Wilson is used for shares because the normal
approximation breaks down exactly where evaluations live: near 50% with few
images, and near 0% or 100%.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

Z_95 = 1.959963984540054
"""The two-sided 95% normal quantile."""


@dataclass(frozen=True)
class Estimate:
    """A mean over ``n`` images with a 95% confidence interval [low, high].

    Args:
        mean: the point estimate.
        low: lower end of the 95% interval.
        high: upper end of the 95% interval.
        n: how many images (or image pairs) the mean is over.
        interval: which interval was used, ``wilson`` or ``normal``.
    """

    mean: float
    low: float
    high: float
    n: int
    interval: str

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def wilson(successes: int, total: int) -> Estimate:
    """The share ``successes / total`` with Wilson's 95% score interval.

    Examples:
        >>> e = wilson(50, 100)
        >>> round(e.low, 3), round(e.high, 3)
        (0.404, 0.596)
    """
    if total <= 0:
        raise ValueError("wilson: need at least one trial")
    p = successes / total
    z2 = Z_95**2
    centre = (p + z2 / (2 * total)) / (1 + z2 / total)
    half = Z_95 * math.sqrt(p * (1 - p) / total + z2 / (4 * total**2)) / (1 + z2 / total)
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), total, "wilson")


def mean_interval(values: np.ndarray) -> Estimate:
    """The mean of ``values`` with a 95% normal interval (mean +- 1.96 standard errors)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise ValueError("mean_interval: no values")
    mean = float(values.mean())
    sem = float(values.std(ddof=1) / math.sqrt(values.size)) if values.size > 1 else float("nan")
    return Estimate(mean, mean - Z_95 * sem, mean + Z_95 * sem, int(values.size), "normal")


def estimate(values: np.ndarray) -> Estimate:
    """Wilson for boolean values (shares), a normal interval for numbers.

    The dtype decides, not the values: an angular error that happens to be 0
    everywhere is still a number in degrees, not a share.
    """
    values = np.asarray(values).reshape(-1)
    if values.dtype == np.bool_:
        return wilson(int(values.sum()), int(values.size))
    return mean_interval(values)


def p_value_above_chance(successes: int, total: int) -> float:
    """One-sided binomial p-value for accuracy above 50%: small means the two sets are told apart."""
    # exact: P(X >= successes) for X ~ Binomial(total, 1/2), in integers so nothing underflows before the end
    return sum(math.comb(total, i) for i in range(successes, total + 1)) / 2**total
