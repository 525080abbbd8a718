"""Position sizing: from a signal's recommendation to an order amount."""

from __future__ import annotations


def entry_amount(
    equity: float,
    price: float,
    size_pct: float,
    max_position_pct: float,
    cash: float,
    fee_rate: float = 0.0,
    stop_price: float | None = None,
    risk_per_trade_pct: float | None = None,
) -> float:
    """Base units to buy.

    The signal's ``size_pct`` of equity, capped by ``max_position_pct`` and by free
    cash (fees included). With ``risk_per_trade_pct`` and a stop, the amount is also
    capped so that hitting the stop loses at most that share of equity.
    """
    if equity <= 0 or price <= 0 or size_pct <= 0:
        return 0.0
    notional = equity * min(size_pct, max_position_pct) / 100.0
    if risk_per_trade_pct is not None and stop_price is not None and 0 < stop_price < price:
        notional = min(notional, equity * risk_per_trade_pct / 100.0 * price / (price - stop_price))
    notional = min(notional, cash / (1.0 + fee_rate))
    return max(0.0, notional / price)
