"""Protective exits of the Engine: stops and targets judged on bars and prices, trailing
stops, and (where the executor offers it) the exchange-side stop order that mirrors them.

The engine's own stop is always judged; an exchange-side stop (``ExchangeConfig.
exchange_stops``) is a second line that also works while the bot is down. It follows
the position: placed after an entry fill, replaced when the trailing stop ratchets,
and cancelled before any other exit leg is sent (its balance is locked; an exit must
never sell the same coins twice). If it already triggered, its fill closes the
position and no second exit is sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.events import Candle, Fact, MarketEvent
from bot.execution.base import ProtectionPort
from bot.execution.orders import OrderClosed
from risk.stops import exit_on_bar, exit_on_price, trailed_stop

if TYPE_CHECKING:
    from bot.execution.base import ExecutionPort
    from risk.portfolio import Portfolio


class ProtectionMixin:
    """Stops, targets and trailing (part of ``Engine``)."""

    portfolio: Portfolio
    executor: ExecutionPort
    _pending_exits: set[str]
    _stops_dirty: set[str]
    _syncing_stops: bool

    if TYPE_CHECKING:  # provided by the other parts of the Engine
        async def _exit(self, symbol: str, amount: float, leg: str, price: float, ts: int,
                        origin: str) -> None: ...
        async def _apply(self, facts: list[Fact | OrderClosed] | list[Fact]) -> None: ...
        def _emit(self, item: Any) -> None: ...

    async def _protect_on_bar(self, candle: Candle) -> None:
        pos = self.portfolio.position(candle.symbol)
        if not pos.is_open:  # nothing to stop out or trail; only stale exchange stops to settle
            if self._stops_dirty:
                await self._sync_stops()
            return
        hit = exit_on_bar(pos, candle.open, candle.high, candle.low)
        if hit is not None:
            if candle.symbol not in self._pending_exits:
                leg, price = hit
                await self._exit(candle.symbol, pos.amount, leg, price, candle.ts, f"{candle.ts}")
            return
        self._trail(candle.symbol, candle.high, candle.close_ts)
        await self._sync_stops()

    def _trail(self, symbol: str, high: float, ts: int) -> None:
        new_stop = trailed_stop(self.portfolio.position(symbol), high)
        if new_stop is not None and self.portfolio.raise_stop(symbol, new_stop):
            self._emit(self.portfolio.position_changed(symbol, ts))
            self._stops_dirty.add(symbol)

    async def _on_price(self, event: MarketEvent, symbol: str, price: float, ts: int) -> None:
        await self._apply(await self.executor.on_market(event))
        self.portfolio.mark(symbol, price)
        pos = self.portfolio.position(symbol)
        hit = exit_on_price(pos, price)
        if hit is not None:
            if symbol not in self._pending_exits:
                await self._exit(symbol, pos.amount, hit[0], hit[1], ts, f"{ts}")
        else:
            self._trail(symbol, price, ts)
            await self._sync_stops()

    # -- exchange-side stops ---------------------------------------------------------------

    @property
    def stop_orders(self) -> ProtectionPort | None:
        """The executor's exchange-side stops (``executor.stop_orders``), if switched on."""
        return getattr(self.executor, "stop_orders", None)

    async def _sync_stops(self) -> None:
        """Bring each touched symbol's exchange stop in line with its position (idempotent)."""
        port = self.stop_orders
        if port is None or self._syncing_stops:
            if port is None:
                self._stops_dirty.clear()
            return
        self._syncing_stops = True
        try:
            while self._stops_dirty:
                symbol = self._stops_dirty.pop()
                pos = self.portfolio.position(symbol)
                if symbol in self._pending_exits:
                    continue  # an exit is in flight; its outcome touches the symbol again
                if pos.is_open and pos.stop_price is not None:
                    facts = await port.protect(symbol, pos.amount, pos.stop_price, pos.opened_ts)
                else:
                    facts = await port.unprotect(symbol)
                await self._apply(facts)
        finally:
            self._syncing_stops = False

    async def rearm_exchange_stops(self) -> None:
        """Give every open position its exchange-side stop (start-up, after reconciliation)."""
        if self.stop_orders is None:
            return
        self._stops_dirty.update(p.symbol for p in self.portfolio.open_positions())
        self._stops_dirty.update(r.symbol for r in getattr(self.stop_orders, "live", list)())
        await self._sync_stops()

    async def _release_exchange_stop(self, symbol: str) -> bool:
        """Cancel the symbol's exchange stop before another exit; False if it already closed us."""
        port = self.stop_orders
        if port is None:
            return True
        self._syncing_stops = True  # the stop's own facts must not re-arm it
        try:
            await self._apply(await port.unprotect(symbol))
        finally:
            self._syncing_stops = False
        self._stops_dirty.discard(symbol)
        return self.portfolio.position(symbol).is_open
