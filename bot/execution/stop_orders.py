"""Exchange-side protective stops (``ExchangeConfig.exchange_stops``): a STOP_LOSS_LIMIT sell
that mirrors the engine's stop, so a position stays protected while the bot is down.

* Placed after an entry fill, for the whole position, at the engine's stop (limit
  ``limit_offset_bps`` below it so a fast market still fills).
* Client order ids are deterministic: ``client_order_id("xstop-<opened>-<stop>-<amount>[-n]",
  symbol, "stop")``; arming the same stop twice finds the live order and sends nothing.
  ``n`` counts earlier, now closed, orders of the same arming (a re-arm after a cancel).
* Moved by cancel + replace when the trailing stop has risen by ``min_move_pct`` or the
  amount changed; cancelled before any other exit leg (the exchange locks its coins).
* A cancel that finds the order gone (triggered, filled) resolves it instead: its fills
  come back as facts and close the position; the engine then sends no second exit.
"""

from __future__ import annotations

from typing import Any, Protocol

import ccxt.async_support as ccxt
import structlog

from bot.core.clock import Clock
from bot.core.events import OrderIntent, OrderType, Side
from bot.core.orders import PROTECTIVE_PREFIX, OrderRecord, Out, client_order_id
from risk.market import MarketRules

log = structlog.get_logger(__name__)


class OrderVenue(Protocol):
    """What the stops use of the exchange executor (``bot.execution.exchange.ExchangeExecutor``)."""

    client: Any  # the ccxt client
    clock: Clock
    prefix: str
    orders: dict[str, OrderRecord]  # client order id -> record
    rules: dict[str, MarketRules]

    async def submit(self, intent: OrderIntent, now_ms: int) -> Out: ...

    async def resolve(self, rec: OrderRecord) -> Out: ...

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any: ...


class ExchangeStops:
    def __init__(self, executor: OrderVenue, limit_offset_bps: float = 50.0,
                 min_move_pct: float = 0.1) -> None:
        self.executor = executor
        self.limit_offset = limit_offset_bps / 10_000.0
        self.min_move = min_move_pct / 100.0

    def live(self, symbol: str | None = None) -> list[OrderRecord]:
        return [r for r in self.executor.orders.values() if r.protective and not r.state.terminal
                and (symbol is None or r.symbol == symbol)]

    def protected_symbols(self) -> set[str]:
        return {r.symbol for r in self.live()}

    def _current(self, rec: OrderRecord, amount: float, stop: float, step: float) -> bool:
        """Whether the live ``rec`` already protects ``amount`` at (about) ``stop``."""
        same_amount = abs(rec.remaining - amount) <= max(step, 1e-12)
        high_enough = rec.stop_price is not None and stop <= rec.stop_price * (1.0 + self.min_move)
        return same_amount and high_enough

    async def protect(self, symbol: str, amount: float, stop_price: float, origin: int) -> Out:
        ex = self.executor
        rules = ex.rules.get(symbol)
        step = (rules.amount_step if rules is not None else None) or 0.0
        qty = float(ex.client.amount_to_precision(symbol, amount)) if amount > step else 0.0
        stop = float(ex.client.price_to_precision(symbol, stop_price))
        live = self.live(symbol)
        if live and all(self._current(r, qty, stop, step) for r in live):
            return []
        out = await self.unprotect(symbol)
        if any(getattr(f, "trade_id", None) for f in out):
            return out  # it had (partly) filled: the engine re-arms for what is left, if anything
        if qty <= 0 or (rules is not None and not rules.tradeable(qty, stop)):
            return out
        base = f"{PROTECTIVE_PREFIX}{origin}-{stop!r}-{qty!r}"
        signal_id = base
        for n in range(1, 1_000):  # an arming whose order closed before gets a fresh id
            known = ex.orders.get(client_order_id(signal_id, symbol, "stop", ex.prefix))
            if known is None:
                break
            if not known.state.terminal:
                return out + await ex.resolve(known)
            signal_id = f"{base}-{n}"
        limit = float(ex.client.price_to_precision(symbol, stop * (1.0 - self.limit_offset)))
        now = ex.clock.now_ms()
        intent = OrderIntent(
            intent_id=f"{signal_id}:{symbol}:stop", signal_id=signal_id, symbol=symbol,
            side=Side.SELL, amount=qty, order_type=OrderType.LIMIT, price=limit,
            reduce_only=True, stop_price=stop, strength=100.0, ts=now, leg="stop",
        )
        cid = client_order_id(signal_id, symbol, "stop", ex.prefix)
        log.info("exchange_stop_arming", symbol=symbol, stop=stop, limit=limit, amount=qty, cid=cid)
        return out + await ex.submit(intent, now)

    async def unprotect(self, symbol: str) -> Out:
        out: Out = []
        for rec in self.live(symbol):
            out += await self.cancel(rec)
        return out

    async def cancel(self, rec: OrderRecord) -> Out:
        ex = self.executor
        params: dict[str, Any] = {} if rec.exchange_order_id else {"origClientOrderId": rec.client_order_id}
        try:
            await ex.call(ex.client.cancel_order, rec.exchange_order_id or None, rec.symbol, params)
        except ccxt.OrderNotFound:
            pass  # triggered and filled, or never placed: the lookup below says which
        except ccxt.BaseError as exc:
            log.error("exchange_stop_cancel_failed", cid=rec.client_order_id, error=str(exc)[:200])
            return []
        return await ex.resolve(rec)
