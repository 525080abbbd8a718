"""One strategy's scorecard: every metric of issue #7 from a :class:`RunRecord`.

Trading metrics come from the equity curve and the fills the Engine produced;
forecast metrics (directional accuracy with a Wilson interval and a binomial
test, Brier score, ECE) come from the out-of-sample probabilities when the
strategy is a forecaster, and otherwise from its signals read as forecasts
(LONG = "up", FLAT = "not up", scored against the next bar).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bot.evaluation.backtest import RunRecord
from bot.evaluation.forecast import (
    brier_score,
    directional_accuracy,
    expected_calibration_error,
)
from bot.evaluation.performance import (
    annual_return,
    average_win_loss,
    bar_returns,
    exposure_stats,
    max_drawdown,
    periods_per_year,
    profit_factor,
    round_trips,
    sharpe,
    sortino,
    trades_per_month,
    turnover,
    win_rate,
)
from bot.core.events import Direction, timeframe_ms


def signal_forecasts(record: RunRecord, ts: np.ndarray, close: np.ndarray) -> dict[str, np.ndarray]:
    """Signals read as direction forecasts of the next bar: arrays ts, p, y."""
    bar = timeframe_ms(record.timeframe)
    row = {int(t): i for i, t in enumerate(ts.tolist())}
    out_ts, out_p, out_y = [], [], []
    for s in record.signals:
        i = row.get(s.ts - bar)  # signal ts is the close of the bar opening at s.ts - bar
        if i is None or i + 1 >= len(close):
            continue
        out_ts.append(s.ts - bar)
        p = s.probability if s.probability is not None else (1.0 if s.direction is Direction.LONG else 0.0)
        out_p.append(p)
        out_y.append(1.0 if close[i + 1] > close[i] else 0.0)
    return {"ts": np.asarray(out_ts, dtype=np.int64), "p": np.asarray(out_p, dtype=np.float64),
            "y": np.asarray(out_y, dtype=np.float64)}


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def score(record: RunRecord, forecasts: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """All metrics of one run, JSON-ready (non-finite values become ``None``)."""
    bar_ms = timeframe_ms(record.timeframe)
    equity = np.concatenate([[record.initial_equity], record.equity])
    span = int(record.ts[-1] - record.ts[0] + bar_ms) if len(record.ts) else 0
    returns = bar_returns(equity)
    ppy = periods_per_year(bar_ms)
    trips = round_trips(record.fills)
    avg_win, avg_loss, wl_ratio = average_win_loss(trips)
    in_market, avg_exposure = exposure_stats(record.exposure, record.equity)
    notional = sum(float(f["amount"]) * float(f["price"]) for f in record.fills)
    out: dict[str, Any] = {
        "strategy": record.strategy,
        "symbol": record.symbol,
        "timeframe": record.timeframe,
        "first_ts": int(record.ts[0]) if len(record.ts) else None,
        "last_ts": int(record.ts[-1]) if len(record.ts) else None,
        "bars": len(record.ts),
        "final_equity": round(float(equity[-1]), 2),
        "total_return": float(equity[-1] / equity[0] - 1.0),
        "annual_return": annual_return(equity, span),
        "sharpe": sharpe(returns, ppy),
        "sortino": sortino(returns, ppy),
        "max_drawdown": max_drawdown(equity),
        "trades": len(trips),
        "trades_per_month": trades_per_month(len(trips), span),
        "win_rate": win_rate(trips),
        "profit_factor": _finite(profit_factor(trips)),
        "avg_win": avg_win,
        "avg_loss": avg_loss,
        "win_loss_ratio": wl_ratio,
        "exposure": in_market,
        "avg_exposure": avg_exposure,
        "turnover": turnover(notional, float(np.mean(equity)), span),
        "fees": round(record.fees, 2),
        "signals": record.stats.signals,
        "denied": record.stats.denied,
    }
    if forecasts is not None and len(forecasts.get("p", ())):
        acc = directional_accuracy(forecasts["y"], forecasts["p"])
        out["accuracy"] = _finite(acc.accuracy)
        out["accuracy_ci"] = [acc.ci_low, acc.ci_high]
        out["accuracy_p_value"] = acc.p_value
        out["accuracy_n"] = acc.n
        probabilistic = bool(np.any((forecasts["p"] > 0) & (forecasts["p"] < 1)))
        out["brier"] = _finite(brier_score(forecasts["y"], forecasts["p"])) if probabilistic else None
        out["ece"] = _finite(expected_calibration_error(forecasts["y"], forecasts["p"])) if probabilistic else None
    return out
