"""Market regimes from the daily trend-and-drawdown rule, and per-regime scores."""

from __future__ import annotations

import numpy as np
import pytest

from bot.evaluation.regimes import DAY_MS, bar_regimes, day_regimes, regime_scores


def test_rule_on_a_rise_a_crash_and_a_flat_market() -> None:
    rise = 100 * 1.01 ** np.arange(200)  # steady trend up
    crash = rise[-1] * 0.97 ** np.arange(1, 31)  # -60% in 30 days
    flat = np.full(300, crash[-1])
    r = day_regimes(np.concatenate([rise, crash, flat]))
    assert (r[:119] == "sideways").all()  # warm-up: no 100-day SMA 20 days ago yet
    assert (r[150:200] == "bull").all()
    assert (r[215:230] == "bear").all()  # 20% below the high and under the SMA
    assert r[-1] == "sideways"  # a year later, flat: neither trend nor drawdown


def test_a_bar_gets_the_regime_of_the_previous_day_only() -> None:
    days = 200
    ts = np.arange(days * 24, dtype=np.int64) * 3_600_000
    close = np.repeat(100 * 1.01 ** np.arange(days), 24)
    base = bar_regimes(ts, close)
    changed = close.copy()
    changed[-24:] *= 0.2  # today's collapse cannot change today's regime
    assert (bar_regimes(ts, changed)[-24:] == base[-24:]).all()
    assert (base[:24] == "sideways").all()


def test_regime_scores_cut_the_equity_curve() -> None:
    days = 260
    ts = np.arange(days * 24, dtype=np.int64) * 3_600_000
    close = np.repeat(100 * 1.01 ** np.arange(days), 24)
    equity = 1000 * 1.0001 ** np.arange(1, len(ts) + 1)
    out = regime_scores(ts, equity, 1000.0, 3_600_000, ts, close)
    assert out["bear"]["bars"] == 0 and out["bear"]["annual_return"] is None
    assert out["bull"]["bars"] + out["sideways"]["bars"] == len(ts)
    assert out["bull"]["annual_return"] == pytest.approx(1.0001 ** (24 * 365) - 1, rel=1e-6)
    assert ts[0] // DAY_MS == 0
