"""Evaluation metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bot.evaluation.forecast import (
    binomial_test,
    brier_score,
    directional_accuracy,
    expected_calibration_error,
    reliability_bins,
    wilson_interval,
)
from bot.evaluation.performance import (
    RoundTrip,
    annual_return,
    average_win_loss,
    bar_returns,
    drawdown_series,
    exposure_stats,
    max_drawdown,
    monthly_returns,
    periods_per_year,
    profit_factor,
    round_trips,
    sharpe,
    sortino,
    trades_per_month,
    turnover,
    win_rate,
)

HOURS_PER_YEAR = 8760.0


def trip(pnl: float) -> RoundTrip:
    return RoundTrip("BTC/USDT", 0, 1, 1.0, 100.0, 100.0 + pnl, pnl)


def test_bars_per_year_follows_the_bar_size() -> None:
    assert periods_per_year(3_600_000) == pytest.approx(8760.0)
    assert periods_per_year(4 * 3_600_000) == pytest.approx(2190.0)
    assert periods_per_year(86_400_000) == pytest.approx(365.0)


def test_sharpe_of_a_known_series() -> None:
    r = np.array([0.01, -0.01, 0.02, 0.0])
    # mean 0.005; sample variance (25+225+225+25)e-6 / 3
    expected = 0.005 / math.sqrt(500e-6 / 3) * math.sqrt(HOURS_PER_YEAR)
    assert sharpe(r, HOURS_PER_YEAR) == pytest.approx(expected)
    assert sharpe(r, 365.0) == pytest.approx(expected * math.sqrt(365.0 / HOURS_PER_YEAR))
    assert sharpe(np.array([0.01, 0.01]), 365.0) == 0.0  # zero variance


def test_sortino_uses_downside_deviation_over_all_bars() -> None:
    r = np.array([0.01, -0.01, 0.02, 0.0])
    # downside = [0, -0.01, 0, 0] -> sqrt(1e-4 / 4) = 0.005; mean 0.005
    assert sortino(r, HOURS_PER_YEAR) == pytest.approx(math.sqrt(HOURS_PER_YEAR))
    assert sortino(np.array([0.01, 0.02]), 365.0) == 0.0


def test_drawdown_of_a_known_curve() -> None:
    equity = np.array([100.0, 120.0, 90.0, 130.0, 65.0])
    assert max_drawdown(equity) == pytest.approx(-0.5)
    np.testing.assert_allclose(drawdown_series(equity), [0.0, 0.0, -0.25, 0.0, -0.5])
    np.testing.assert_allclose(bar_returns(equity)[:2], [0.2, -0.25])


def test_annual_return_compounds_over_the_span() -> None:
    two_years = 2 * 365 * 86_400_000
    assert annual_return(np.array([100.0, 121.0]), two_years) == pytest.approx(0.1)


def test_trade_statistics() -> None:
    trips = [trip(10), trip(-5), trip(20), trip(-5)]
    assert win_rate(trips) == 0.5
    assert profit_factor(trips) == pytest.approx(3.0)
    assert average_win_loss(trips) == pytest.approx((15.0, -5.0, 3.0))
    assert profit_factor([trip(1)]) == math.inf
    assert profit_factor([]) == 0.0
    month = 365.0 * 86_400_000 / 12
    assert trades_per_month(6, int(3 * month)) == pytest.approx(2.0)


def test_round_trips_net_of_fees() -> None:
    fills = [
        {"symbol": "X", "side": "buy", "amount": 2.0, "price": 10.0, "fee": 0.02, "ts": 1},
        {"symbol": "X", "side": "sell", "amount": 2.0, "price": 12.0, "fee": 0.024, "ts": 2},
    ]
    (t,) = round_trips(fills)
    assert t.pnl == pytest.approx(4.0 - 0.044)


def test_exposure_and_turnover() -> None:
    in_market, avg = exposure_stats(np.array([0.0, 50.0, 100.0, 0.0]), np.full(4, 100.0))
    assert (in_market, avg) == pytest.approx((0.5, 0.375))
    half_year = int(365 * 86_400_000 / 2)
    assert turnover(200.0, 100.0, half_year) == pytest.approx(4.0)


def test_monthly_returns_chain_month_ends() -> None:
    day = 86_400_000
    jan1 = 1609459200000  # 2021-01-01
    ts = np.array([jan1 + 14 * day, jan1 + 30 * day, jan1 + 40 * day, jan1 + 58 * day])
    out = monthly_returns(ts, np.array([100.0, 110.0, 99.0, 121.0]))
    assert out == pytest.approx({(2021, 1): 0.1, (2021, 2): 0.1})


def test_wilson_interval_known_value() -> None:
    lo, hi = wilson_interval(60, 100)
    assert (lo, hi) == pytest.approx((0.5020, 0.6906), abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_binomial_test_known_values() -> None:
    # P(X >= 8 | n=10, p=.5) = (45 + 10 + 1) / 1024; two-sided doubles it
    assert binomial_test(8, 10) == pytest.approx(112 / 1024)
    assert binomial_test(5, 10) == pytest.approx(1.0)
    scipy_stats = pytest.importorskip("scipy.stats")
    for k, n, p in [(5230, 10_000, 0.5), (3, 20, 0.3), (17, 20, 0.6)]:
        assert binomial_test(k, n, p) == pytest.approx(scipy_stats.binomtest(k, n, p).pvalue, rel=1e-6)


def test_directional_accuracy_ignores_nan_labels() -> None:
    y = np.array([1.0, 0.0, 1.0, 1.0, np.nan])
    p = np.array([0.7, 0.2, 0.4, 0.5, 0.9])
    a = directional_accuracy(y, p)
    assert (a.n, a.correct, a.accuracy) == (4, 3, 0.75)
    assert a.ci_low < 0.75 < a.ci_high
    assert a.p_value == pytest.approx(binomial_test(3, 4))


def test_brier_and_ece_known_values() -> None:
    y = np.array([1.0, 0.0, 1.0])
    p = np.array([0.8, 0.3, 0.6])
    assert brier_score(y, p) == pytest.approx(0.29 / 3)
    assert expected_calibration_error(y, p) == pytest.approx((0.2 + 0.3 + 0.4) / 3)
    b = reliability_bins(y, p)
    assert b.count.sum() == 3 and b.count[8] == 1 and b.freq[3] == 0.0
    perfect = np.array([0.25] * 4)
    assert expected_calibration_error(np.array([1.0, 0.0, 0.0, 0.0]), perfect) == pytest.approx(0.0)
