"""Position sizing: from a signal's recommendation to an order amount.

    size_pct = signal.size_pct                           (the strategy's, agreement included)
    notional = equity x min(size_pct, max_position_pct)
               capped by risk-per-trade / stop distance   (ATR or percent stop)
               capped by free cash (fees included)
    amount   = notional / worst expected fill, rounded down to the lot size

Sizing proposes; the risk gate still checks every cap afterwards.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

from risk.market import MarketRules


class RollingATR:
    """Simple-average ATR over the last ``n`` bars, kept up to date one bar at a time (O(1)).

    True range = max(high - low, |high - previous close|, |low - previous close|).
    """

    def __init__(self, n: int = 14) -> None:
        self.n = n
        self._tr: deque[float] = deque(maxlen=n)
        self._prev_close: float | None = None

    def update(self, high: float, low: float, close: float) -> float | None:
        """Add a closed bar; the ATR over the last ``n`` bars, ``None`` until there are ``n + 1``."""
        prev = self._prev_close
        self._prev_close = close
        tr = self._tr
        if prev is not None:  # max() of the three, spelled out (as max compares them; once per bar)
            true_range = high - low
            if (up := abs(high - prev)) > true_range:
                true_range = up
            if (down := abs(low - prev)) > true_range:
                true_range = down
            tr.append(true_range)
        n = self.n
        if len(tr) < n or n <= 0:
            return None
        value = sum(tr) / n
        return value if math.isfinite(value) and value > 0 else None

    def seed(self, high: Sequence[float], low: Sequence[float], close: Sequence[float]) -> float | None:
        """Start from history (e.g. a warmed buffer); the ATR after its last bar."""
        value = None
        for h, lo, c in zip(high, low, close, strict=True):
            value = self.update(float(h), float(lo), float(c))
        return value


def entry_amount(
    equity: float,
    price: float,
    size_pct: float,
    max_position_pct: float,
    cash: float,
    fee_rate: float = 0.0,
    stop_price: float | None = None,
    risk_per_trade_pct: float | None = None,
    slippage_margin: float = 0.0,
    rules: MarketRules | None = None,
) -> float:
    """Base units to buy.

    The signal's ``size_pct`` of equity, capped by ``max_position_pct`` and by free
    cash (fees included). With ``risk_per_trade_pct`` and a stop, the amount is also
    capped so that hitting the stop loses at most that share of equity. Priced at the
    worst expected fill (``price x (1 + slippage_margin)``) so the caps hold after slippage.
    """
    if equity <= 0 or price <= 0 or size_pct <= 0:
        return 0.0
    worst = price * (1.0 + slippage_margin)
    notional = equity * min(size_pct, max_position_pct) / 100.0
    if risk_per_trade_pct is not None and stop_price is not None and 0 < stop_price < price:
        risk_budget = equity * risk_per_trade_pct / 100.0
        notional = min(notional, risk_budget * worst / ((price - stop_price) * (1.0 + slippage_margin)))
    notional = min(notional, max(0.0, cash) / (1.0 + fee_rate))
    amount = max(0.0, notional / worst)
    return rules.round_amount(amount) if rules is not None else amount
