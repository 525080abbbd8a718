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
