"""Portfolio accounting: cash, long spot positions, equity and heat. Pure Python.

Fills change it; prices mark it. Fees are paid in quote currency. ``heat`` is the
sum over open positions of what would be lost if each one's stop were hit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from bot.core.events import EquitySnapshot, OrderFilled, PositionChanged, Side

EPSILON = 1e-12


@dataclass(frozen=True, slots=True)
class Position:
    symbol: str
    amount: float = 0.0
    avg_price: float = 0.0
    stop_price: float | None = None
    take_profit: float | None = None
    trail_pct: float | None = None
    realized_pnl: float = 0.0
    opened_ts: int = 0

    @property
    def is_open(self) -> bool:
        return self.amount > EPSILON

    def risk_to_stop(self) -> float:
        """Quote currency lost if the stop is hit (a missing stop risks the whole position)."""
        if not self.is_open:
            return 0.0
        stop = self.stop_price if self.stop_price is not None else 0.0
        return max(0.0, (self.avg_price - stop) * self.amount)


class Portfolio:
    def __init__(self, cash: float) -> None:
        if cash < 0:
            raise ValueError("starting cash cannot be negative")
        self.cash = cash
        self.positions: dict[str, Position] = {}
        self._flat: dict[str, Position] = {}
        self.last_price: dict[str, float] = {}
        self.fees_paid = 0.0
        # below these amounts a remainder cannot be traded (lot size / min notional): dust
        self.dust: dict[str, float] = {}
        self.dust_held: dict[str, float] = {}  # untradeable remainders written off

    def restore_cash(self, cash: float) -> None:
        """Put back the cash known from the store or the exchange's balance (restart, start-up)."""
        self.cash = cash

    def set_lot_size(self, symbol: str, amount_step: float) -> None:
        """Below ``amount_step`` a remainder of ``symbol`` cannot be traded: it is dust."""
        self.dust[symbol] = amount_step

    def position(self, symbol: str) -> Position:
        pos = self.positions.get(symbol)
        if pos is None:  # flat: one shared (frozen) empty position per symbol
            pos = self._flat.get(symbol) or self._flat.setdefault(symbol, Position(symbol))
        return pos

    def open_positions(self) -> list[Position]:
        return [p for p in self.positions.values() if p.is_open]

    def mark(self, symbol: str, price: float) -> None:
        self.last_price[symbol] = price

    def exposure(self) -> float:
        return sum(
            p.amount * self.last_price.get(p.symbol, p.avg_price) for p in self.open_positions()
        )

    def equity(self) -> float:
        return self.cash + self.exposure()

    def heat(self) -> float:
        return sum(p.risk_to_stop() for p in self.open_positions())

    def snapshot(self, ts: int) -> EquitySnapshot:
        exposure = heat = 0.0  # exposure() and heat() in one pass (once per candle)
        for p in self.positions.values():
            if p.is_open:
                exposure += p.amount * self.last_price.get(p.symbol, p.avg_price)
                heat += p.risk_to_stop()
        return EquitySnapshot(ts, self.cash, self.cash + exposure, exposure, heat)

    def report(self) -> dict[str, Any]:
        """Open positions (with unrealised P&L at the last price) and equity, as plain data."""
        positions = []
        for p in self.open_positions():
            price = self.last_price.get(p.symbol, p.avg_price)
            positions.append({"symbol": p.symbol, "amount": p.amount, "avg_price": p.avg_price,
                              "stop_price": p.stop_price, "take_profit": p.take_profit, "price": price,
                              "unrealized_pnl": round((price - p.avg_price) * p.amount, 8)})
        eq, heat = self.equity(), self.heat()
        return {"positions": positions, "equity": round(eq, 2), "cash": round(self.cash, 2),
                "heat": round(heat, 2), "heat_pct": round(100 * heat / eq, 4) if eq > 0 else 0.0}

    def set_protection(
        self,
        symbol: str,
        stop_price: float | None,
        take_profit: float | None,
        trail_pct: float | None = None,
    ) -> None:
        pos = self.position(symbol)
        self.positions[symbol] = replace(
            pos, stop_price=stop_price, take_profit=take_profit, trail_pct=trail_pct
        )

    def raise_stop(self, symbol: str, new_stop: float) -> bool:
        """Move a stop up (never down). Returns whether it moved."""
        pos = self.position(symbol)
        if not pos.is_open or (pos.stop_price is not None and new_stop <= pos.stop_price):
            return False
        self.positions[symbol] = replace(pos, stop_price=new_stop)
        return True

    def apply_fill(self, fill: OrderFilled) -> PositionChanged:
        pos = self.position(fill.symbol)
        notional = fill.amount * fill.price
        self.fees_paid += fill.fee
        if fill.side is Side.BUY:
            self.cash -= notional + fill.fee
            amount = pos.amount + fill.amount
            avg = (pos.avg_price * pos.amount + notional) / amount
            pos = replace(
                pos,
                amount=amount,
                avg_price=avg,
                realized_pnl=pos.realized_pnl - fill.fee,
                opened_ts=pos.opened_ts if pos.is_open else fill.ts,
            )
        else:
            sold = min(fill.amount, pos.amount)
            self.cash += notional - fill.fee
            pnl = (fill.price - pos.avg_price) * sold - fill.fee
            amount = pos.amount - sold
            if amount <= max(EPSILON, self.dust.get(fill.symbol, 0.0)):
                self.dust_held[fill.symbol] = self.dust_held.get(fill.symbol, 0.0) + max(0.0, amount)
                pos = Position(fill.symbol, realized_pnl=pos.realized_pnl + pnl)
            else:
                pos = replace(pos, amount=amount, realized_pnl=pos.realized_pnl + pnl)
        self.positions[fill.symbol] = pos
        self.mark(fill.symbol, self.last_price.get(fill.symbol, fill.price))
        return self.position_changed(fill.symbol, fill.ts)

    def restore(self, position: Position) -> None:
        """Put back a position known from the store or the exchange (restart)."""
        self.positions[position.symbol] = position
        self.last_price.setdefault(position.symbol, position.avg_price)

    def position_changed(self, symbol: str, ts: int) -> PositionChanged:
        pos = self.position(symbol)
        return PositionChanged(
            symbol, pos.amount, pos.avg_price, pos.stop_price, pos.take_profit, pos.realized_pnl, ts
        )
