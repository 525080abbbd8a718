"""How much of a backtest's Sharpe ratio is luck: PSR, deflated Sharpe, MinTRL and PBO.

* Probabilistic Sharpe ratio (Bailey & López de Prado, "The Sharpe Ratio Efficient
  Frontier", 2012): the probability that the true Sharpe exceeds a benchmark, given
  the estimate from ``T`` returns with their skewness and kurtosis.
* Deflated Sharpe ratio (Bailey & López de Prado, "The Deflated Sharpe Ratio", 2014):
  the PSR against the Sharpe the best of ``N`` unskilled trials would show by chance,
  from the number of trials and the variance of their Sharpe ratios.
* Minimum track record length: how many returns the estimate needs before it beats
  the benchmark at a confidence level.
* Probability of backtest overfitting by combinatorially symmetric cross-validation
  (Bailey, Borwein, López de Prado & Zhu, "The Probability of Backtest Overfitting",
  2017): how often the in-sample winner of a set of trials ranks below the median
  out of sample.

Every Sharpe ratio here is per observation (not annualised): the formulas are in
the returns' own sampling frequency.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.stats import kurtosis as _kurtosis
from scipy.stats import norm
from scipy.stats import skew as _skew

EULER_GAMMA = 0.5772156649015329
DSR_FLAG_BELOW = 0.95  # a strategy whose deflated Sharpe is below this is flagged
PBO_FLAG_ABOVE = 0.2  # ... or whose probability of backtest overfitting is above this


def sharpe_per_period(returns: np.ndarray) -> float:
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 2:
        return 0.0
    sd = float(np.std(r, ddof=1))
    return 0.0 if sd == 0 else float(np.mean(r)) / sd


def _sharpe_sd(sr: float, t: int, skew: float, kurt: float) -> float:
    """Standard error of a per-period Sharpe estimate (kurt: full kurtosis, 3 for normal)."""
    var = (1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr) / (t - 1)
    return math.sqrt(max(var, 1e-300))


def probabilistic_sharpe(sr: float, t: int, skew: float = 0.0, kurt: float = 3.0,
                         benchmark: float = 0.0) -> float:
    """PSR: P(true Sharpe > ``benchmark``) given estimate ``sr`` from ``t`` returns."""
    if t < 2:
        return float("nan")
    return float(norm.cdf((sr - benchmark) / _sharpe_sd(sr, t, skew, kurt)))


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """Expected maximum Sharpe of ``n_trials`` unskilled trials (true Sharpe 0) with that variance."""
    if n_trials < 2 or sharpe_variance <= 0:
        return 0.0
    n = float(n_trials)
    return math.sqrt(sharpe_variance) * (
        (1.0 - EULER_GAMMA) * norm.ppf(1.0 - 1.0 / n) + EULER_GAMMA * norm.ppf(1.0 - 1.0 / (n * math.e)))


def deflated_sharpe(sr: float, t: int, n_trials: int, sharpe_variance: float,
                    skew: float = 0.0, kurt: float = 3.0) -> float:
    """DSR: the PSR of ``sr`` against the expected maximum of ``n_trials`` unskilled trials."""
    return probabilistic_sharpe(sr, t, skew, kurt, expected_max_sharpe(n_trials, sharpe_variance))


def min_track_record(sr: float, skew: float = 0.0, kurt: float = 3.0, benchmark: float = 0.0,
                     confidence: float = 0.95) -> float:
    """Returns needed for PSR(``benchmark``) to reach ``confidence``; inf when ``sr`` <= benchmark."""
    if sr <= benchmark:
        return float("inf")
    z = norm.ppf(confidence)
    return 1.0 + (1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr) * (z / (sr - benchmark)) ** 2


def moments(returns: np.ndarray) -> tuple[float, float]:
    """(skewness, full kurtosis) of ``returns``; (0, 3) when there are too few to tell."""
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 4 or float(np.std(r)) == 0:
        return 0.0, 3.0
    return float(_skew(r)), float(_kurtosis(r, fisher=False))


@dataclass(frozen=True, slots=True)
class SharpeStats:
    """The luck-adjusted statistics of one strategy's returns among ``n_trials`` tried."""

    sharpe: float  # per period
    n_obs: int
    skew: float
    kurtosis: float
    n_trials: int
    trials_sharpe_variance: float
    psr: float  # against 0
    dsr: float  # against the expected best of n_trials unskilled ones
    min_track_record: float  # observations for PSR(0) >= 95%

    @property
    def flagged(self) -> bool:
        return not (self.dsr >= DSR_FLAG_BELOW)

    def as_dict(self) -> dict[str, float | int | bool]:
        return {"sharpe_per_period": self.sharpe, "n_obs": self.n_obs, "skew": self.skew,
                "kurtosis": self.kurtosis, "n_trials": self.n_trials,
                "trials_sharpe_variance": self.trials_sharpe_variance, "psr": self.psr,
                "dsr": self.dsr, "min_track_record": self.min_track_record, "flagged": self.flagged}


def sharpe_stats(returns: np.ndarray, trial_sharpes: np.ndarray | None = None) -> SharpeStats:
    """PSR, DSR and MinTRL of ``returns``, deflated by the per-period Sharpes of all trials tried."""
    r = np.asarray(returns, dtype=np.float64)
    r = r[np.isfinite(r)]
    sr = sharpe_per_period(r)
    sk, ku = moments(r)
    trials = np.asarray(trial_sharpes if trial_sharpes is not None else [sr], dtype=np.float64)
    trials = trials[np.isfinite(trials)]
    n = max(1, len(trials))
    var = float(np.var(trials, ddof=1)) if len(trials) >= 2 else 0.0
    return SharpeStats(sr, len(r), sk, ku, n, var, probabilistic_sharpe(sr, len(r), sk, ku),
                       deflated_sharpe(sr, len(r), n, var, sk, ku), min_track_record(sr, sk, ku))


@dataclass(frozen=True, slots=True)
class PBOResult:
    pbo: float  # share of splits whose in-sample winner ranks at or below the OOS median
    logits: np.ndarray  # one logit of the winner's relative OOS rank per split
    n_splits: int
    n_trials: int

    @property
    def flagged(self) -> bool:
        return not (self.pbo <= PBO_FLAG_ABOVE)


def probability_of_overfitting(
    performance: np.ndarray, n_blocks: int = 16,
    metric: Callable[[np.ndarray], np.ndarray] | None = None,
) -> PBOResult:
    """CSCV over a ``(T observations, N trials)`` matrix of per-period returns.

    The rows are cut into ``n_blocks`` contiguous blocks (even, dropping the
    remainder at the start); each half of the blocks in turn is in-sample, its
    complement out-of-sample. ``metric`` maps a (rows, N) block of returns to N
    scores (default: per-period Sharpe).
    """
    m = np.asarray(performance, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] < 2:
        raise ValueError("PBO needs a (observations, trials) matrix with at least two trials")
    if n_blocks < 2 or n_blocks % 2:
        raise ValueError("n_blocks must be an even number >= 2")
    t, n = m.shape
    size = t // n_blocks
    if size < 2:
        raise ValueError(f"{t} observations are too few for {n_blocks} blocks")
    m = m[t - size * n_blocks:]
    blocks = m.reshape(n_blocks, size, n)
    score = metric or _sharpe_columns
    logits = []
    for is_idx in combinations(range(n_blocks), n_blocks // 2):
        oos_idx = [b for b in range(n_blocks) if b not in is_idx]
        is_perf = score(blocks[list(is_idx)].reshape(-1, n))
        oos_perf = score(blocks[oos_idx].reshape(-1, n))
        best = int(np.argmax(is_perf))
        rank = float(np.sum(oos_perf <= oos_perf[best]))  # 1..N, N = best out of sample
        omega = rank / (n + 1.0)
        logits.append(math.log(omega / (1.0 - omega)))
    lg = np.asarray(logits)
    return PBOResult(float(np.mean(lg <= 0.0)), lg, len(lg), n)


def _sharpe_columns(block: np.ndarray) -> np.ndarray:
    sd = np.std(block, axis=0, ddof=1)
    mean = np.mean(block, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, mean / sd, 0.0)
