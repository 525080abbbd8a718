"""Metrics of directional forecasts: accuracy with its uncertainty, and calibration.

Pure numpy functions. ``y`` is the realised direction (1 = up, 0 = not up) and
``p`` the forecast probability of "up"; a forecast is called "up" when ``p >= 0.5``.

* :func:`wilson_interval`: score interval of a binomial proportion (good at any n);
* :func:`binomial_test`: exact two-sided test of "accuracy = p0" (default 50%),
  with the same convention as ``scipy.stats.binomtest`` (sum of outcomes no more
  likely than the observed one);
* :func:`brier_score`, :func:`expected_calibration_error`, :func:`reliability_bins`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from strategies.training.classification import brier, ece


@dataclass(frozen=True, slots=True)
class DirectionalAccuracy:
    n: int
    correct: int
    accuracy: float
    ci_low: float  # 95% Wilson interval
    ci_high: float
    p_value: float  # exact two-sided binomial test against 50%

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    def format(self) -> str:
        """``"52.3% [51.1, 53.5]"`` (percentages)."""
        if self.n == 0:
            return "n/a"
        return f"{self.accuracy:.1%} [{self.ci_low:.1%}, {self.ci_high:.1%}]"


def wilson_interval(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (95% by default)."""
    if n <= 0:
        return 0.0, 1.0
    phat = k / n
    denom = 1.0 + z * z / n
    centre = (phat + z * z / (2 * n)) / denom
    half = z * math.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _binom_logpmf(n: int, p: float) -> np.ndarray:
    k = np.arange(n + 1, dtype=np.float64)
    lgam = np.vectorize(math.lgamma)
    logc = math.lgamma(n + 1) - lgam(k + 1) - lgam(n - k + 1)
    with np.errstate(divide="ignore"):
        return logc + k * np.log(p) + (n - k) * np.log1p(-p)


def binomial_test(k: int, n: int, p0: float = 0.5) -> float:
    """Exact two-sided p-value of observing ``k`` of ``n`` under success rate ``p0``."""
    if n <= 0:
        return 1.0
    if not 0.0 < p0 < 1.0:
        raise ValueError("p0 must be strictly between 0 and 1")
    logpmf = _binom_logpmf(n, p0)
    observed = logpmf[k]
    # outcomes at most as likely as the observed one (relative tolerance as scipy)
    mask = logpmf <= observed + math.log1p(1e-7)
    total = float(np.sum(np.exp(logpmf[mask])))
    return min(1.0, total)


def _finite_pairs(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Forecasts and outcomes where both are known (a walk-forward leaves NaN before its first fold)."""
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"shape mismatch {y.shape} vs {p.shape}")
    ok = np.isfinite(y) & np.isfinite(p)
    return y[ok], p[ok]


def directional_accuracy(y: np.ndarray, p: np.ndarray) -> DirectionalAccuracy:
    """Hit rate of ``p >= 0.5`` against ``y``, ignoring pairs where either is NaN."""
    y, p = _finite_pairs(y, p)
    n = len(y)
    correct = int(np.sum((p >= 0.5) == (y >= 0.5)))
    lo, hi = wilson_interval(correct, n)
    acc = correct / n if n else float("nan")
    return DirectionalAccuracy(n, correct, acc, lo, hi, binomial_test(correct, n))


def brier_score(y: np.ndarray, p: np.ndarray) -> float:
    """:func:`strategies.training.classification.brier` over the finite pairs (NaN when there are none)."""
    y, p = _finite_pairs(y, p)
    return brier(y, p) if len(y) else float("nan")


@dataclass(frozen=True, slots=True)
class ReliabilityBins:
    """Per equal-width probability bin: count, mean forecast, observed frequency."""

    edges: np.ndarray  # [n_bins + 1]
    count: np.ndarray  # [n_bins] int
    mean_p: np.ndarray  # [n_bins] NaN where empty
    freq: np.ndarray  # [n_bins] NaN where empty


def reliability_bins(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> ReliabilityBins:
    y, p = _finite_pairs(y, p)
    p = np.clip(p, 0.0, 1.0)
    idx = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    sum_p = np.bincount(idx, weights=p, minlength=n_bins)
    sum_y = np.bincount(idx, weights=y, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(count > 0, sum_p / count, np.nan)
        freq = np.where(count > 0, sum_y / count, np.nan)
    return ReliabilityBins(np.linspace(0.0, 1.0, n_bins + 1), count, mean_p, freq)


def expected_calibration_error(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> float:
    """:func:`strategies.training.classification.ece` over the finite pairs (NaN when there are none)."""
    y, p = _finite_pairs(y, p)
    return ece(y, p, n_bins) if len(y) else float("nan")
