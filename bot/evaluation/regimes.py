"""Market regimes (bull / bear / sideways) from a daily trend-and-drawdown rule, and scores per regime.

The rule, on UTC daily closes (the last close of each day), applied to day ``d``
from the closes up to and including day ``d - 1`` (causal: a bar's regime is known
before it opens):

* **bear**: the close is at least ``DRAWDOWN`` (20%) below its highest close of the
  trailing 365 days AND below its ``TREND_DAYS`` (100-day) simple moving average;
* **bull**: above the 100-day SMA, the SMA higher than ``SLOPE_DAYS`` (20) days
  earlier, and less than 20% below the 365-day high;
* **sideways**: everything else (and the warm-up days before the SMA exists).

Each strategy's equity curve is then cut by the regime of each bar: share of bars,
annualised return and Sharpe over the bars of each regime.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bot.evaluation.performance import periods_per_year, sharpe

REGIMES = ("bull", "bear", "sideways")
DAY_MS = 86_400_000
TREND_DAYS, SLOPE_DAYS, HIGH_DAYS, DRAWDOWN = 100, 20, 365, 0.20


def daily_closes(ts: np.ndarray, close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(day start ms, last close of the day) of every UTC day with a bar."""
    day = np.asarray(ts, dtype=np.int64) // DAY_MS
    last = np.flatnonzero(np.r_[day[1:] != day[:-1], True])
    return day[last] * DAY_MS, np.asarray(close, dtype=np.float64)[last]


def day_regimes(closes: np.ndarray) -> np.ndarray:
    """Regime of each day from the closes up to and including it (apply to the next day)."""
    c = np.asarray(closes, dtype=np.float64)
    n = len(c)
    out = np.full(n, "sideways", dtype=object)
    csum = np.concatenate([[0.0], np.cumsum(c)])
    for d in range(TREND_DAYS - 1 + SLOPE_DAYS, n):
        sma = (csum[d + 1] - csum[d + 1 - TREND_DAYS]) / TREND_DAYS
        sma_before = (csum[d + 1 - SLOPE_DAYS] - csum[d + 1 - SLOPE_DAYS - TREND_DAYS]) / TREND_DAYS
        dd = c[d] / c[max(0, d - HIGH_DAYS + 1) : d + 1].max() - 1.0
        if dd <= -DRAWDOWN and c[d] < sma:
            out[d] = "bear"
        elif c[d] > sma and sma > sma_before and dd > -DRAWDOWN:
            out[d] = "bull"
    return out


def bar_regimes(ts: np.ndarray, close: np.ndarray, at: np.ndarray | None = None) -> np.ndarray:
    """Regime of each bar (of ``ts``, or of the times ``at``): that of the previous complete day."""
    days, closes = daily_closes(ts, close)
    regimes = day_regimes(closes)
    query = np.asarray(ts if at is None else at, dtype=np.int64)
    prev = np.searchsorted(days, (query // DAY_MS) * DAY_MS, side="left") - 1  # last day strictly before
    return np.where(prev >= 0, regimes[np.maximum(prev, 0)], "sideways")


def regime_scores(equity_ts: np.ndarray, equity: np.ndarray, initial: float, bar_ms: int,
                  ts: np.ndarray, close: np.ndarray) -> dict[str, dict[str, Any]]:
    """Share of bars, annualised return and Sharpe of an equity curve within each regime."""
    eq = np.concatenate([[initial], np.asarray(equity, dtype=np.float64)])
    rets = eq[1:] / eq[:-1] - 1.0
    labels = bar_regimes(ts, close, np.asarray(equity_ts, dtype=np.int64))
    ppy = periods_per_year(bar_ms)
    out: dict[str, dict[str, Any]] = {}
    for name in REGIMES:
        r = rets[labels == name]
        growth = float(np.sum(np.log1p(r))) if len(r) else 0.0
        out[name] = {
            "bars": len(r),
            "share": len(r) / len(rets) if len(rets) else 0.0,
            "annual_return": math.expm1(growth * ppy / len(r)) if len(r) else None,
            "sharpe": sharpe(r, ppy) if len(r) > 1 else None,
        }
    return out
