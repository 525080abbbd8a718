"""The signal framework: strength, confidence interval, horizon, risk level and size.

Every evaluation of a model-driven strategy becomes one stored ``Signal`` (acted on
or not). The pieces are pure functions of the ensemble's outputs, so they are
testable as truth tables:

* **strength** (0-100): conviction in the chosen direction. ``50`` is a coin flip;
  it rises linearly with the combined probability's distance from 0.5 and
  reaches ``100`` at ``saturation`` (default P = 0.75 or 0.25):
  ``50 + 50 * min(1, |p - 0.5| / (saturation - 0.5))``. With the default
  ``act_strength = 65`` a long needs P(up) >= 0.575;
* **confidence interval** of the combined probability: from the spread of the
  model outputs (weighted mean +- z * weighted std / sqrt(n_eff)) or from a
  deterministic bootstrap over the models;
* **risk level** ``low | medium | high`` from the annualised volatility forecast
  (default cut points 50% and 85%: roughly the terciles of BTC's 7-day realised
  volatility 2017-2021);
* **recommended size** 1-10% of equity: linear in strength from ``act_strength``
  (-> ``min_size_pct``) to 100 (-> ``max_size_pct``), times the agreement scale
  (n/n = 1.0 down to k/n = ``min_agreement_scale``, 0.6 by default as in "5/5 =
  full size, 4/5 = 60%"), times the risk multiplier, clamped to [min, max]; 0
  when the signal is not acted on.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

RISK_LEVELS = ("low", "medium", "high")
HOURS_PER_YEAR = 24 * 365


@dataclass(frozen=True, slots=True)
class SignalPolicy:
    """How ensemble outputs become a Signal (all TOML-configurable via strategy params)."""

    act_strength: float = 65.0
    saturation: float = 0.75
    min_size_pct: float = 1.0
    max_size_pct: float = 10.0
    min_agreement_scale: float = 0.6
    ci_method: str = "spread"  # spread | bootstrap
    ci_level: float = 0.9
    bootstrap_samples: int = 200
    risk_low_below: float = 0.50  # annualised volatility
    risk_high_above: float = 0.85
    risk_multipliers: Mapping[str, float] = field(
        default_factory=lambda: {"low": 1.0, "medium": 0.75, "high": 0.5, "": 1.0}
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.act_strength <= 100.0:
            raise ValueError(f"act_strength must be in [0, 100], got {self.act_strength}")
        if not 0.5 < self.saturation <= 1.0:
            raise ValueError(f"saturation must be in (0.5, 1], got {self.saturation}")
        if not 0.0 < self.min_size_pct <= self.max_size_pct <= 100.0:
            raise ValueError(
                f"need 0 < min_size_pct <= max_size_pct <= 100, got {self.min_size_pct}/{self.max_size_pct}"
            )
        if not 0.0 < self.min_agreement_scale <= 1.0:
            raise ValueError(f"min_agreement_scale must be in (0, 1], got {self.min_agreement_scale}")
        if self.ci_method not in ("spread", "bootstrap"):
            raise ValueError(f"ci_method must be 'spread' or 'bootstrap', got {self.ci_method!r}")
        if not 0.0 < self.ci_level < 1.0:
            raise ValueError(f"ci_level must be in (0, 1), got {self.ci_level}")
        if not 0.0 < self.risk_low_below <= self.risk_high_above:
            raise ValueError("need 0 < risk_low_below <= risk_high_above")
        unknown = set(self.risk_multipliers) - set(RISK_LEVELS) - {""}
        if unknown or any(v < 0 for v in self.risk_multipliers.values()):
            raise ValueError(
                f"risk_multipliers: keys in {RISK_LEVELS}, values >= 0; got {dict(self.risk_multipliers)}"
            )


def strength_from_probability(p: float, saturation: float = 0.75) -> float:
    """Conviction 50..100 of a probability in whichever direction it leans."""
    if not math.isfinite(p):
        return 0.0
    edge = min(1.0, abs(p - 0.5) / (saturation - 0.5))
    return 50.0 + 50.0 * edge


@functools.lru_cache(maxsize=16)
def _z(level: float) -> float:

    return NormalDist().inv_cdf(0.5 + level / 2.0)


def weighted_mean(values: Sequence[float], weights: Sequence[float] | None = None) -> float:
    v = np.asarray(values, dtype=np.float64)
    w = np.ones_like(v) if weights is None else np.asarray(weights, dtype=np.float64)
    return float(np.sum(v * w) / np.sum(w))


def confidence_interval(
    probs: Sequence[float],
    weights: Sequence[float] | None = None,
    method: str = "spread",
    level: float = 0.9,
    samples: int = 200,
    seed: int = 0,
) -> tuple[float, float]:
    """Interval for the weighted mean of model probabilities, clipped to [0, 1].

    ``spread``: mean +- z * weighted std / sqrt(n_eff) (Kish's effective n).
    ``bootstrap``: percentile interval of the weighted mean over ``samples``
    resamplings of the models with replacement (seeded: deterministic).
    One model gives a zero-width interval.
    """
    if 0 < len(probs) < SMALL_SUM and (method == "spread" or len(probs) == 1):
        return _spread_small(probs, weights, level)  # an ensemble's few models: once per bar
    p = np.asarray(probs, dtype=np.float64)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=np.float64)
    if p.size == 0:
        raise ValueError("no probabilities")
    mean = float(np.sum(p * w) / np.sum(w))
    if p.size == 1:
        return mean, mean
    if method == "spread":
        var = float(np.sum(w * (p - mean) ** 2) / np.sum(w))
        n_eff = float(np.sum(w) ** 2 / np.sum(w**2))
        half = _z(level) * math.sqrt(var / n_eff)
        return max(0.0, mean - half), min(1.0, mean + half)
    if method == "bootstrap":
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, p.size, size=(samples, p.size))
        ws = w[idx]
        means = np.sum(p[idx] * ws, axis=1) / np.maximum(np.sum(ws, axis=1), 1e-300)
        lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
        return max(0.0, float(lo)), min(1.0, float(hi))
    raise ValueError(f"unknown confidence-interval method {method!r}")


# Below 8 elements numpy's pairwise summation is a plain left-to-right loop from 0.0, so
# the same loop in Python gives the same bits at a tenth of the cost (tests/strategies/test_signals.py).
SMALL_SUM = 8


def _seq_sum(values: Sequence[float]) -> float:
    total = 0.0
    for v in values:
        total += v
    return total


def _spread_small(probs: Sequence[float], weights: Sequence[float] | None, level: float) -> tuple[float, float]:
    """``confidence_interval(method="spread")`` for fewer than ``SMALL_SUM`` models, in floats:
    operation for operation the numpy formula (products, left-to-right sums, one division)."""
    p = [float(x) for x in probs]
    w = [1.0] * len(p) if weights is None else [float(x) for x in weights]
    sw = _seq_sum(w)
    mean = _seq_sum([a * b for a, b in zip(p, w, strict=True)]) / sw
    if len(p) == 1:
        return mean, mean
    var = _seq_sum([b * ((a - mean) * (a - mean)) for a, b in zip(p, w, strict=True)]) / sw
    n_eff = sw**2 / _seq_sum([b * b for b in w])
    half = _z(level) * math.sqrt(var / n_eff)
    return max(0.0, mean - half), min(1.0, mean + half)


def annualised_vol(per_bar_vol: float, bar_ms: int) -> float:
    """Scale a per-bar volatility (std of log returns) to one year."""
    bars_per_year = 365 * 86_400_000 / bar_ms
    return per_bar_vol * math.sqrt(bars_per_year)


def risk_level(annual_vol: float | None, low_below: float = 0.50, high_above: float = 0.85) -> str:
    """``low`` / ``medium`` / ``high`` from an annualised volatility forecast; ``""`` if unknown."""
    if annual_vol is None or not math.isfinite(annual_vol):
        return ""
    if annual_vol < low_below:
        return "low"
    if annual_vol >= high_above:
        return "high"
    return "medium"


def agreement_scale(agreeing: int, n: int, k: int, min_scale: float = 0.6) -> float:
    """Size multiplier from agreement: n/n -> 1.0, k/n -> ``min_scale``, linear between; <k -> 0."""
    if n <= 0 or agreeing < k or agreeing <= 0:
        return 0.0
    if k >= n:
        return 1.0
    frac = (min(agreeing, n) - k) / (n - k)
    return min_scale + (1.0 - min_scale) * frac


def recommended_size(
    strength: float,
    policy: SignalPolicy,
    scale: float = 1.0,
    risk: str = "",
) -> float:
    """Position size in % of equity; 0 below ``act_strength`` or when ``scale`` is 0."""
    if not math.isfinite(strength) or strength < policy.act_strength or scale <= 0:
        return 0.0
    span = 100.0 - policy.act_strength
    frac = 1.0 if span <= 0 else (strength - policy.act_strength) / span
    base = policy.min_size_pct + (policy.max_size_pct - policy.min_size_pct) * frac
    mult = policy.risk_multipliers.get(risk, 1.0)
    if mult <= 0:
        return 0.0
    return float(min(policy.max_size_pct, max(policy.min_size_pct, base * scale * mult)))


def policy_from_params(params: Mapping[str, object]) -> SignalPolicy:
    """A ``SignalPolicy`` from the matching keys of a strategy's params (others ignored)."""
    names = set(SignalPolicy.__dataclass_fields__)
    kw = {k: v for k, v in params.items() if k in names}
    if "risk_multipliers" in kw:
        merged = {"low": 1.0, "medium": 0.75, "high": 0.5, "": 1.0}
        merged.update(dict(kw["risk_multipliers"]))  # type: ignore[call-overload]
        kw["risk_multipliers"] = merged
    return SignalPolicy(**kw)  # type: ignore[arg-type]
