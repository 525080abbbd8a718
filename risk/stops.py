"""Protective exits: stop loss, take profit and trailing stop, judged intrabar.

``exit_on_bar`` looks at a whole bar's range, so a stop touched by a wick is hit
even if the bar closes above it. If a bar touches both the stop and the target
the stop is assumed first (the conservative reading). A gap through a level fills
at the open, not at the level.
"""

from __future__ import annotations

from dataclasses import dataclass

from risk.portfolio import Position


@dataclass(frozen=True, slots=True)
class StopRules:
    stop_loss_pct: float = 6.0
    take_profit_pct: float | None = 12.0
    trailing_stop_pct: float | None = None
    atr_multiple: float | None = None  # when set (and an ATR is known) the stop is entry - k*ATR

    def levels(self, entry_price: float, atr: float | None = None) -> tuple[float, float | None]:
        """Stop and take-profit prices for a long entry at ``entry_price``."""
        if self.atr_multiple is not None and atr is not None and atr > 0:
            stop = entry_price - self.atr_multiple * atr
        else:
            stop = entry_price * (1.0 - self.stop_loss_pct / 100.0)
        target = (
            entry_price * (1.0 + self.take_profit_pct / 100.0)
            if self.take_profit_pct is not None
            else None
        )
        return max(stop, 0.0), target


def exit_on_price(pos: Position, price: float) -> tuple[str, float] | None:
    """Exit leg and trigger price if a traded/quoted ``price`` crosses a level.

    A raised trailing stop is still the position's stop: it exits as ``stop``.
    """
    if not pos.is_open:
        return None
    if pos.stop_price is not None and price <= pos.stop_price:
        return "stop", price
    if pos.take_profit is not None and price >= pos.take_profit:
        return "take_profit", price
    return None


def exit_on_bar(pos: Position, open_: float, high: float, low: float) -> tuple[str, float] | None:
    """Exit leg and fill price if a bar's range crosses the stop or the target."""
    if not pos.is_open:
        return None
    if pos.stop_price is not None and low <= pos.stop_price:
        return "stop", min(open_, pos.stop_price)
    if pos.take_profit is not None and high >= pos.take_profit:
        return "take_profit", max(open_, pos.take_profit)
    return None


def stop_distance_ok(stop: float | None, price: float) -> bool:
    """A usable long stop lies strictly between zero and the entry price."""
    return stop is not None and 0 < stop < price


def trailed_stop(pos: Position, high: float) -> float | None:
    """New stop after a bar that reached ``high``, if the trailing stop moves it up."""
    if not pos.is_open or pos.trail_pct is None:
        return None
    candidate = high * (1.0 - pos.trail_pct / 100.0)
    if pos.stop_price is None or candidate > pos.stop_price:
        return candidate
    return None
