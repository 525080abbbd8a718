"""Signal framework: strength, size, confidence interval and risk level."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from strategies.signals import (
    SignalPolicy,
    agreement_scale,
    confidence_interval,
    policy_from_params,
    recommended_size,
    risk_level,
    strength_from_probability,
)

POLICY = SignalPolicy()


@pytest.mark.parametrize(
    ("p", "strength"),
    [
        pytest.param(0.5, 50.0, id="coin-flip-50"),
        pytest.param(0.575, 65.0, id="act-edge-65"),
        pytest.param(0.75, 100.0, id="saturation-100"),
        pytest.param(0.99, 100.0, id="beyond-saturation-capped"),
        pytest.param(0.25, 100.0, id="bearish-conviction-symmetric"),
        pytest.param(0.45, 60.0, id="mild-bearish-60"),
        pytest.param(float("nan"), 0.0, id="nan-0"),
    ],
)
def test_strength_from_probability(p, strength) -> None:
    assert strength_from_probability(p) == pytest.approx(strength)


@pytest.mark.parametrize(
    ("strength", "scale", "risk", "size"),
    [
        pytest.param(64.999, 1.0, "", 0.0, id="below-act-no-size"),
        pytest.param(65.0, 1.0, "", 1.0, id="act-edge-min-size"),
        pytest.param(100.0, 1.0, "", 10.0, id="max-strength-max-size"),
        pytest.param(82.5, 1.0, "", 5.5, id="midpoint-linear"),
        pytest.param(100.0, 0.6, "", 6.0, id="4of5-60pct"),
        pytest.param(65.0, 0.6, "", 1.0, id="floor-at-min-size"),
        pytest.param(100.0, 1.0, "medium", 7.5, id="medium-risk-75pct"),
        pytest.param(100.0, 1.0, "high", 5.0, id="high-risk-half"),
        pytest.param(100.0, 0.0, "", 0.0, id="no-agreement-no-size"),
    ],
)
def test_strength_to_size(strength, scale, risk, size) -> None:
    assert recommended_size(strength, POLICY, scale, risk) == pytest.approx(size)


@given(st.floats(0, 100), st.floats(0, 1), st.sampled_from(["", "low", "medium", "high"]))
def test_size_is_zero_or_within_1_to_10_percent(strength, scale, risk) -> None:
    size = recommended_size(strength, POLICY, scale, risk)
    assert size == 0.0 or 1.0 <= size <= 10.0
    if strength < POLICY.act_strength:
        assert size == 0.0


@pytest.mark.parametrize(
    ("agreeing", "n", "k", "scale"),
    [
        pytest.param(5, 5, 4, 1.0, id="5of5-full"),
        pytest.param(4, 5, 4, 0.6, id="4of5-60pct"),
        pytest.param(3, 5, 4, 0.0, id="3of5-none"),
        pytest.param(4, 5, 3, 0.8, id="4of5-with-k3-interpolated"),
        pytest.param(3, 3, 3, 1.0, id="unanimous-k-equals-n"),
    ],
)
def test_agreement_scale(agreeing, n, k, scale) -> None:
    assert agreement_scale(agreeing, n, k) == pytest.approx(scale)


@pytest.mark.parametrize(
    ("vol", "level"),
    [
        pytest.param(None, "", id="unknown"),
        pytest.param(0.3, "low", id="low"),
        pytest.param(0.5, "medium", id="low-edge-is-medium"),
        pytest.param(0.849, "medium", id="medium"),
        pytest.param(0.85, "high", id="high-edge"),
        pytest.param(float("nan"), "", id="nan-unknown"),
    ],
)
def test_risk_level(vol, level) -> None:
    assert risk_level(vol) == level


def test_spread_interval_contains_mean_and_shrinks_with_agreement() -> None:
    lo, hi = confidence_interval([0.55, 0.6, 0.65, 0.58, 0.62])
    assert lo < 0.6 < hi
    tight = confidence_interval([0.6, 0.6, 0.6, 0.6, 0.6])
    assert tight == pytest.approx((0.6, 0.6))
    assert confidence_interval([0.7]) == (0.7, 0.7)


def test_bootstrap_interval_is_deterministic_and_bounded() -> None:
    p = [0.3, 0.9, 0.55, 0.6, 0.52]
    a = confidence_interval(p, method="bootstrap")
    assert a == confidence_interval(p, method="bootstrap")
    assert 0.3 <= a[0] < sum(p) / 5 < a[1] <= 0.9


def test_policy_from_params_ignores_other_keys_and_validates() -> None:
    pol = policy_from_params({"act_strength": 70, "models": ["x"], "risk_multipliers": {"high": 0.0}})
    assert pol.act_strength == 70
    assert pol.risk_multipliers["high"] == 0.0 and pol.risk_multipliers["low"] == 1.0
    with pytest.raises(ValueError):
        SignalPolicy(min_size_pct=5, max_size_pct=2)


def _spread_numpy(probs: list[float], weights: list[float] | None, level: float) -> tuple[float, float]:
    """The spread interval as numpy computes it for any number of models (the reference)."""
    import math

    import numpy as np

    from strategies.signals import _z

    p = np.asarray(probs, dtype=np.float64)
    w = np.ones_like(p) if weights is None else np.asarray(weights, dtype=np.float64)
    mean = float(np.sum(p * w) / np.sum(w))
    if p.size == 1:
        return mean, mean
    var = float(np.sum(w * (p - mean) ** 2) / np.sum(w))
    half = _z(level) * math.sqrt(var / float(np.sum(w) ** 2 / np.sum(w**2)))
    return max(0.0, mean - half), min(1.0, mean + half)


unit = st.floats(0.0, 1.0, allow_nan=False)
weight = st.floats(1e-6, 1e6, allow_nan=False)


@given(st.lists(st.tuples(unit, weight), min_size=1, max_size=12), st.booleans(),
       st.sampled_from([0.8, 0.9, 0.95]))
def test_spread_interval_is_bit_identical_to_the_numpy_formula(pw: list[tuple[float, float]], weighted: bool,
                                                               level: float) -> None:
    # the few-model path runs in plain floats once per bar; a stored signal must not move by one ulp
    probs, weights = [p for p, _ in pw], [w for _, w in pw] if weighted else None
    assert confidence_interval(probs, weights, "spread", level) == _spread_numpy(probs, weights, level)
