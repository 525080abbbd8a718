"""Performance metrics of an equity curve and a list of round-trip trades."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MS_PER_YEAR = 365.0 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class RoundTrip:
    symbol: str
    entry_ts: int
    exit_ts: int
    amount: float
    entry_price: float
    exit_price: float
    pnl: float  # after fees, quote currency

    @property
    def return_pct(self) -> float:
        cost = self.entry_price * self.amount
        return 100.0 * self.pnl / cost if cost else 0.0


def periods_per_year(bar_ms: int) -> float:
    return MS_PER_YEAR / bar_ms


def bar_returns(equity: np.ndarray) -> np.ndarray:
    equity = np.asarray(equity, dtype=np.float64)
    if len(equity) < 2:
        return np.zeros(0)
    return equity[1:] / equity[:-1] - 1.0


def sharpe(returns: np.ndarray, bars_per_year: float) -> float:
    """Annualised Sharpe ratio of per-bar simple returns (risk-free rate 0)."""
    if len(returns) < 2:
        return 0.0
    sd = float(np.std(returns, ddof=1))
    return 0.0 if sd == 0 else float(np.mean(returns)) / sd * math.sqrt(bars_per_year)


def max_drawdown(equity: np.ndarray) -> float:
    """Largest peak-to-trough fall as a negative fraction (-0.25 = -25%)."""
    equity = np.asarray(equity, dtype=np.float64)
    if len(equity) == 0:
        return 0.0
    peaks = np.maximum.accumulate(equity)
    return float(np.min(equity / peaks - 1.0))


def annual_return(equity: np.ndarray, span_ms: int) -> float:
    """Compound annual growth rate over ``span_ms``."""
    if len(equity) < 2 or span_ms <= 0 or equity[0] <= 0 or equity[-1] <= 0:
        return 0.0
    return float((equity[-1] / equity[0]) ** (MS_PER_YEAR / span_ms) - 1.0)


def win_rate(trades: Sequence[RoundTrip]) -> float:
    return sum(t.pnl > 0 for t in trades) / len(trades) if trades else 0.0


def round_trips(fills: Sequence[dict[str, object]]) -> list[RoundTrip]:
    """Pair fills (store rows, in time order) into flat-to-flat round trips per symbol."""
    open_: dict[str, dict[str, float]] = {}
    trips: list[RoundTrip] = []
    for f in fills:
        symbol, side = str(f["symbol"]), str(f["side"])
        amount, price, fee, ts = float(f["amount"]), float(f["price"]), float(f["fee"]), int(f["ts"])  # type: ignore[arg-type]
        if amount <= 0:
            continue
        st = open_.setdefault(symbol, {"amount": 0.0, "cost": 0.0, "proceeds": 0.0, "fees": 0.0,
                                       "bought": 0.0, "ts": ts})
        if st["amount"] <= 1e-12 and side == "buy":
            st.update(amount=0.0, cost=0.0, proceeds=0.0, fees=0.0, bought=0.0, ts=ts)
        st["fees"] += fee
        if side == "buy":
            st["amount"] += amount
            st["bought"] += amount
            st["cost"] += amount * price
        else:
            st["amount"] -= amount
            st["proceeds"] += amount * price
            if st["amount"] <= 1e-9 * max(st["bought"], 1e-12):
                bought = st["bought"]
                trips.append(
                    RoundTrip(
                        symbol, int(st["ts"]), ts, bought, st["cost"] / bought,
                        st["proceeds"] / bought, st["proceeds"] - st["cost"] - st["fees"],
                    )
                )
                st.update(amount=0.0, bought=0.0)
    return trips


# ---------------------------------------------------------------------------
# Extended return / trade metrics (pure functions of arrays and trade lists)
# ---------------------------------------------------------------------------

MS_PER_MONTH = MS_PER_YEAR / 12.0


def sortino(returns: np.ndarray, bars_per_year: float, target: float = 0.0) -> float:
    """Annualised Sortino ratio: mean excess return over the downside deviation.

    The downside deviation is ``sqrt(mean(min(r - target, 0)^2))`` over ALL bars
    (the standard definition, not the std of the negative bars only).
    """
    r = np.asarray(returns, dtype=np.float64)
    if len(r) < 2:
        return 0.0
    downside = np.minimum(r - target, 0.0)
    dd = math.sqrt(float(np.mean(downside**2)))
    return 0.0 if dd == 0 else float(np.mean(r - target)) / dd * math.sqrt(bars_per_year)


def drawdown_series(equity: np.ndarray) -> np.ndarray:
    """Drawdown from the running peak at every point (0 at new highs, negative below)."""
    equity = np.asarray(equity, dtype=np.float64)
    if len(equity) == 0:
        return np.zeros(0)
    return equity / np.maximum.accumulate(equity) - 1.0


def profit_factor(trades: Sequence[RoundTrip]) -> float:
    """Gross profit / gross loss of round trips (``inf`` with no losing trade, 0 with no trade)."""
    gains = sum(t.pnl for t in trades if t.pnl > 0)
    losses = -sum(t.pnl for t in trades if t.pnl < 0)
    if losses == 0:
        return math.inf if gains > 0 else 0.0
    return gains / losses


def average_win_loss(trades: Sequence[RoundTrip]) -> tuple[float, float, float]:
    """(mean winning pnl, mean losing pnl (negative), |win/loss| ratio); 0 where undefined."""
    wins = [t.pnl for t in trades if t.pnl > 0]
    losses = [t.pnl for t in trades if t.pnl < 0]
    avg_win = sum(wins) / len(wins) if wins else 0.0
    avg_loss = sum(losses) / len(losses) if losses else 0.0
    ratio = abs(avg_win / avg_loss) if avg_loss else 0.0
    return avg_win, avg_loss, ratio


def exposure_stats(exposure: np.ndarray, equity: np.ndarray) -> tuple[float, float]:
    """(fraction of bars with an open position, mean exposure / equity)."""
    exposure = np.asarray(exposure, dtype=np.float64)
    equity = np.asarray(equity, dtype=np.float64)
    if len(exposure) == 0:
        return 0.0, 0.0
    in_market = float(np.mean(exposure > 1e-9))
    frac = np.divide(exposure, equity, out=np.zeros_like(exposure), where=equity > 0)
    return in_market, float(np.mean(frac))


def turnover(traded_notional: float, mean_equity: float, span_ms: int) -> float:
    """Annualised turnover: traded notional (both sides) per year over mean equity."""
    if mean_equity <= 0 or span_ms <= 0:
        return 0.0
    return traded_notional / mean_equity * (MS_PER_YEAR / span_ms)


def trades_per_month(n_trades: int, span_ms: int) -> float:
    return n_trades * MS_PER_MONTH / span_ms if span_ms > 0 else 0.0


def monthly_returns(ts: np.ndarray, equity: np.ndarray) -> dict[tuple[int, int], float]:
    """Return of each calendar month (UTC) from month-end to month-end equity.

    The first month is measured from the first equity point.
    """
    ts = np.asarray(ts, dtype=np.int64)
    equity = np.asarray(equity, dtype=np.float64)
    if len(ts) == 0:
        return {}
    months = ts.astype("datetime64[ms]").astype("datetime64[M]")
    out: dict[tuple[int, int], float] = {}
    prev = float(equity[0])
    # index of the last point of each month (months are ascending with ts)
    last = np.flatnonzero(np.append(months[1:] != months[:-1], True))
    for i in last:
        m = months[i].astype(object)
        end = float(equity[i])
        out[(m.year, m.month)] = end / prev - 1.0 if prev > 0 else 0.0
        prev = end
    return out
