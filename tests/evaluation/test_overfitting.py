"""PSR, deflated Sharpe, MinTRL and PBO against the papers' worked examples and planted cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from bot.evaluation.overfitting import (
    deflated_sharpe,
    expected_max_sharpe,
    min_track_record,
    probabilistic_sharpe,
    probability_of_overfitting,
    sharpe_stats,
)

# Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", section "A numerical example":
# N = 100 trials, best annualised SR 2.5 over T = 1250 daily returns, skew -3, kurtosis 10,
# variance of the trials' annualised Sharpe ratios 0.5 -> SR0 = 0.1132 per day, DSR = 0.9004.
DAYS = 250
SR = 2.5 / math.sqrt(DAYS)
VAR = 0.5 / DAYS


def test_expected_max_sharpe_matches_the_paper() -> None:
    assert expected_max_sharpe(100, VAR) == pytest.approx(0.1132, abs=5e-4)


def test_deflated_sharpe_matches_the_paper() -> None:
    assert deflated_sharpe(SR, 1250, 100, VAR, skew=-3.0, kurt=10.0) == pytest.approx(0.9004, abs=1e-3)


def test_psr_against_the_expected_maximum_is_the_deflated_sharpe() -> None:
    sr0 = expected_max_sharpe(100, VAR)
    assert probabilistic_sharpe(SR, 1250, -3.0, 10.0, benchmark=sr0) == pytest.approx(
        deflated_sharpe(SR, 1250, 100, VAR, -3.0, 10.0))


def test_psr_falls_with_negative_skew_and_fat_tails() -> None:
    normal = probabilistic_sharpe(0.05, 500)
    assert probabilistic_sharpe(0.05, 500, skew=-3.0, kurt=10.0) < normal
    assert probabilistic_sharpe(0.0, 500) == pytest.approx(0.5)


@given(sr=st.floats(0.01, 0.5), skew=st.floats(-2, 2), kurt=st.floats(2.0, 12.0),
       conf=st.floats(0.6, 0.99))
@settings(max_examples=60, deadline=None)
def test_min_track_record_is_where_psr_reaches_the_confidence(sr: float, skew: float, kurt: float,
                                                             conf: float) -> None:
    if 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr <= 0:
        return
    n = min_track_record(sr, skew, kurt, confidence=conf)
    # the PSR formula is continuous in T: at the real-valued MinTRL it equals the confidence
    var = (1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr) / (n - 1)
    assert norm.cdf(sr / math.sqrt(var)) == pytest.approx(conf, abs=1e-9)
    assert probabilistic_sharpe(sr, math.ceil(n) + 1, skew, kurt) > conf
    assert min_track_record(-sr) == math.inf


def test_dsr_of_a_lone_trial_is_its_psr() -> None:
    rng = np.random.default_rng(1)
    r = rng.normal(0.001, 0.01, 2000)
    stats = sharpe_stats(r)
    assert stats.n_trials == 1 and stats.dsr == pytest.approx(stats.psr)


def test_pbo_of_pure_noise_is_near_one_half() -> None:
    rng = np.random.default_rng(7)
    m = rng.normal(0.0, 0.01, size=(1600, 40))
    res = probability_of_overfitting(m, n_blocks=10)
    assert res.n_splits == 252
    assert 0.35 <= res.pbo <= 0.65


def test_pbo_with_one_planted_edge_is_near_zero() -> None:
    rng = np.random.default_rng(7)
    m = rng.normal(0.0, 0.01, size=(1600, 40))
    m[:, 13] += 0.004  # a true edge of 0.4 standard deviations a period
    res = probability_of_overfitting(m, n_blocks=10)
    assert res.pbo <= 0.02
    assert not res.flagged


def test_pbo_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError):
        probability_of_overfitting(np.zeros((100, 1)))
    with pytest.raises(ValueError):
        probability_of_overfitting(np.zeros((100, 3)), n_blocks=5)
