"""Exchange trading rules of one market (minimums and precision), as pure data.

The executor that knows the exchange fills these in (ccxt ``markets``); the gate
and the sizing only read them. ``None`` means "the exchange imposes no rule".
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MarketRules:
    symbol: str
    amount_step: float | None = None  # lot size: amounts are multiples of this
    price_tick: float | None = None
    min_amount: float | None = None
    min_notional: float | None = None  # quote value of the smallest order

    def round_amount(self, amount: float) -> float:
        """Round ``amount`` down to the lot size (never up: never more than was sized)."""
        step = self.amount_step
        if step is None or step <= 0 or amount <= 0:
            return max(0.0, amount)
        units = math.floor(amount / step + 1e-9)
        return round(units * step, 12)

    def on_step(self, amount: float) -> bool:
        step = self.amount_step
        if step is None or step <= 0:
            return True
        units = amount / step
        return abs(units - round(units)) <= 1e-6

    def tradeable(self, amount: float, price: float) -> bool:
        """Whether an order of ``amount`` at ``price`` clears the exchange minimums."""
        return minimums_problem(self, amount, price) is None

    def dust(self, price: float) -> float:
        """The largest amount that cannot be traded at ``price`` (a position below it is dust)."""
        floor = self.min_amount or 0.0
        if self.min_notional and price > 0:
            floor = max(floor, self.min_notional / price)
        return max(floor, self.amount_step or 0.0)


def minimums_problem(rules: MarketRules, amount: float, price: float) -> str | None:
    if rules.min_amount is not None and amount < rules.min_amount * (1 - 1e-9):
        return f"amount {amount:.10g} below the exchange minimum {rules.min_amount:.10g}"
    if rules.min_notional is not None and amount * price < rules.min_notional * (1 - 1e-9):
        return f"notional {amount * price:.4f} below the exchange minimum {rules.min_notional:.4f}"
    if not rules.on_step(amount):
        return f"amount {amount:.12g} is not a multiple of the lot size {rules.amount_step}"
    return None
