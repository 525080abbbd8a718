"""Candle-only simulated execution: market orders fill at the next bar's open.

An order placed when a bar closes is filled at the open of the next bar of its
symbol, moved against the trader by ``slippage_bps``, and charged ``fee_rate`` of
its notional. Protective exits (stop / take-profit legs) detected inside a bar
fill at once at their trigger price, with the same slippage. Buys are clamped to
the cash available at fill time (a gap up never drives cash negative).

Every order ends with an ``OrderClosed``: ``filled``, or ``expired`` for what the
cash could not pay for, or ``canceled`` when the daemon drops it (``cancel_all``), so
the Engine releases what it reserved for it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bot.core.events import (
    PROTECTIVE_LEGS,
    Candle,
    Fact,
    MarketEvent,
    OrderFilled,
    OrderIntent,
    OrderSubmitted,
    Side,
)
from bot.core.orders import OrderClosed, OrderState, stays_at_cancel
from bot.core.ports import ProtectionPort

Out = list[Fact | OrderClosed]
EPS = 1e-12


class SimulatedExecutor:
    protection: ProtectionPort | None = None  # nothing rests anywhere: no exchange-side stops

    def __init__(
        self,
        fee_rate: float = 0.001,
        slippage_bps: float = 5.0,
        cash: Callable[[], float] | None = None,
    ) -> None:
        self.fee_rate = fee_rate
        self.slippage = slippage_bps / 10_000.0
        self._cash = cash
        self._pending: dict[str, list[OrderSubmitted]] = {}

    def pending(self, symbol: str) -> list[OrderSubmitted]:
        return list(self._pending.get(symbol, ()))

    async def cancel_all(self, now_ms: int, symbols: Sequence[str], *, keep_protective: bool,
                         entries_only: bool = False, reason: str = "canceled") -> tuple[int, Out]:
        """Drop orders on ``symbols`` waiting for the next open (``ExecutionPort.cancel_all``).
        Nothing was placed anywhere: the facts only tell the Engine to release what it held."""
        def kept(o: OrderSubmitted) -> bool:
            return stays_at_cancel(o.intent_id.rsplit(":", 1)[-1], o.side, keep_protective=keep_protective,
                                   entries_only=entries_only)

        out: Out = []
        for symbol in [s for s in self._pending if s in symbols]:
            orders = self._pending[symbol]
            keep = [o for o in orders if kept(o)]
            out += [OrderClosed(o.order_id, o.intent_id, o.symbol, OrderState.CANCELED, 0.0, now_ms, reason)
                    for o in orders if not kept(o)]
            if keep:
                self._pending[symbol] = keep
            else:
                del self._pending[symbol]
        return len(out), out

    async def submit(self, intent: OrderIntent, now_ms: int) -> Out:
        order = OrderSubmitted(
            order_id=intent.intent_id,
            intent_id=intent.intent_id,
            symbol=intent.symbol,
            side=intent.side,
            amount=intent.amount,
            order_type=intent.order_type,
            price=intent.price,
            ts=now_ms,
        )
        if intent.leg in PROTECTIVE_LEGS and intent.price is not None:
            return [order, *self._fill(order, intent.price, now_ms)]
        self._pending.setdefault(intent.symbol, []).append(order)
        return [order]

    async def on_market(self, event: MarketEvent) -> Out:
        if not isinstance(event, Candle):
            return []
        out: Out = []
        for order in self._pending.pop(event.symbol, ()):
            out += self._fill(order, event.open, event.ts)
        return out

    def _fill(self, order: OrderSubmitted, reference: float, ts: int) -> Out:
        """The order's one fill (if any) and its close: what the cash cannot pay for expires."""
        buy = order.side is Side.BUY
        price = reference * (1.0 + self.slippage if buy else 1.0 - self.slippage)
        amount = order.amount
        if buy and self._cash is not None:
            amount = min(amount, max(0.0, self._cash()) / (price * (1.0 + self.fee_rate)))
        out: Out = []
        if amount > EPS:
            out.append(OrderFilled(
                order_id=order.order_id,
                trade_id=f"{order.order_id}#1",
                symbol=order.symbol,
                side=order.side,
                amount=amount,
                price=price,
                fee=amount * price * self.fee_rate,
                ts=ts,
            ))
        short = order.amount - amount
        if short <= max(EPS, order.amount * 1e-9):
            out.append(OrderClosed(order.order_id, order.intent_id, order.symbol, OrderState.FILLED,
                                   amount, ts))
        else:
            out.append(OrderClosed(order.order_id, order.intent_id, order.symbol, OrderState.EXPIRED,
                                   max(amount, 0.0), ts, f"cash covered {amount:.8g} of {order.amount:.8g}"))
        return out
