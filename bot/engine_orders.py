"""Decisions and facts of the Engine: signals become intents, the risk gate judges them,
the executor's facts (orders, fills, denials, closed orders) move the portfolio.

What an approved, unfilled entry commits (heat, cash, a position slot) is held as a
``Reservation`` until it fills or closes, so the gate never double-counts room.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog

from bot.events import (
    Direction,
    Fact,
    OrderDenied,
    OrderFilled,
    OrderIntent,
    OrderSubmitted,
    OrderType,
    Side,
    Signal,
)
from bot.execution.orders import OrderClosed, is_protective_intent
from bot.reservations import Reservation
from risk.checks import added_heat
from risk.gate import RiskContext, RiskGate
from risk.sizing import entry_amount

if TYPE_CHECKING:
    from bot.clock import Clock
    from bot.engine_state import EngineSettings, EngineStats, Listener
    from bot.execution.base import ExecutionPort
    from bot.store import Store
    from risk.market import MarketRules
    from risk.portfolio import Portfolio
    from risk.state import TradingState

log = structlog.get_logger("bot.engine")

MINUTE_MS = 60_000


class OrderFlowMixin:
    """Signals -> intents -> gate -> executor -> facts (part of ``Engine``)."""

    gate: RiskGate
    executor: ExecutionPort
    portfolio: Portfolio
    store: Store
    clock: Clock
    settings: EngineSettings
    markets: dict[str, MarketRules]
    state: TradingState
    paused: dict[str, str]
    stats: EngineStats
    _decided: set[str]
    _entered_signals: set[str]
    _intents: dict[str, OrderIntent]
    _order_intent: dict[str, str]
    _pending_entries: set[str]
    _pending_exits: set[str]
    _order_times: deque[int]
    _reserved: dict[str, Reservation]
    _atr: dict[str, float]
    _listeners: list[Listener]
    _since_flush: int
    _stops_dirty: set[str]

    if TYPE_CHECKING:  # provided by the other parts of the Engine
        @property
        def margin(self) -> float: ...
        def _emit(self, item: Any) -> None: ...
        def _check_breakers(self, ts: int) -> None: ...
        async def _sync_stops(self) -> None: ...
        async def _release_exchange_stop(self, symbol: str) -> bool: ...

    def _log_order(self, event: str, **kw: Any) -> None:
        (log.info if self.settings.orders_at_info else log.debug)(event, **kw)

    async def on_signal(self, signal: Signal, price: float, may_enter: bool = True) -> None:
        """Act on a strategy's signal at reference ``price`` (also for external signal sources);
        ``may_enter=False`` (a backfilled bar): exits only."""
        self.stats.signals += 1
        self._emit(signal)
        symbol = signal.symbol
        held = self.portfolio.position(symbol).amount
        if signal.direction is Direction.FLAT and held > 0 and symbol not in self._pending_exits:
            await self._exit(symbol, held, "exit", price, signal.ts, signal.signal_id)
        elif (
            may_enter
            and signal.direction is Direction.LONG
            and held <= 0
            and signal.size_pct > 0
            and symbol not in self._pending_entries
        ):
            await self._enter(signal, price)

    async def _enter(self, signal: Signal, price: float) -> None:
        atr = self._atr.get(signal.symbol)
        stop, target = self.settings.stops.levels(price, atr)
        amount = entry_amount(
            equity=self.portfolio.equity(),
            price=price,
            size_pct=signal.size_pct,  # the strategy owns agreement sizing
            max_position_pct=self.gate.limits.max_position_pct,
            cash=self.portfolio.cash,
            fee_rate=self.settings.fee_rate,
            stop_price=stop,
            risk_per_trade_pct=self.settings.risk_per_trade_pct,
            slippage_margin=self.margin,
            rules=self.markets.get(signal.symbol),
        )
        intent = OrderIntent(
            intent_id=f"{signal.signal_id}:entry",
            signal_id=signal.signal_id,
            symbol=signal.symbol,
            side=Side.BUY,
            amount=amount,
            order_type=OrderType.MARKET,
            price=price,
            stop_price=stop,
            take_profit=target,
            strength=signal.strength,
            ts=signal.ts,
            leg="entry",
        )
        self._pending_entries.add(signal.symbol)  # before submit: a fill may come at once
        if not await self._decide(intent, price):
            self._pending_entries.discard(signal.symbol)

    async def _exit(
        self, symbol: str, amount: float, leg: str, price: float, ts: int, origin: str
    ) -> None:
        amount = self._exit_amount(symbol, amount)
        intent = OrderIntent(
            intent_id=f"{origin}:{symbol}:{leg}",
            signal_id=origin,
            symbol=symbol,
            side=Side.SELL,
            amount=amount,
            order_type=OrderType.MARKET,
            price=price,
            reduce_only=True,
            strength=100.0,
            ts=ts,
            leg=leg,
        )
        self._pending_exits.add(symbol)
        # judged before the exchange-side stop is touched: a denied exit leaves it resting
        if not await self._judge(intent, price):
            self._pending_exits.discard(symbol)
            return
        if not await self._release_exchange_stop(symbol):
            self._pending_exits.discard(symbol)
            return  # the exchange-side stop already closed the position
        left = self._exit_amount(symbol, amount)
        await self._send(replace(intent, amount=left) if left < intent.amount else intent)

    def _exit_amount(self, symbol: str, amount: float) -> float:
        amount = min(amount, self.portfolio.position(symbol).amount)
        rules = self.markets.get(symbol)
        return rules.round_amount(amount) if rules is not None else amount

    def risk_context(self, intent: OrderIntent, price: float) -> RiskContext:
        now = self.clock.now_ms()
        while self._order_times and self._order_times[0] <= now - MINUTE_MS:
            self._order_times.popleft()
        held = {p.symbol for p in self.portfolio.open_positions()}
        held |= {r.symbol for r in self._reserved.values()}
        return RiskContext(
            state=self.state,
            equity=self.portfolio.equity(),
            cash=self.portfolio.cash - sum(r.cost for r in self._reserved.values()),
            price=price,
            position=self.portfolio.position(intent.symbol).amount,
            open_positions=len(held),
            heat=self.committed_heat(),
            fee_rate=self.settings.fee_rate,
            seen_intents=self._decided,
            entered_signals=self._entered_signals,
            orders_last_minute=len(self._order_times),
            market=self.markets.get(intent.symbol),
            slippage_margin=self.margin,
            paused=self.paused.get(intent.symbol),
        )

    def reservations(self) -> dict[str, Reservation]:
        """What approved, unfilled entries hold, by intent id (a copy)."""
        return dict(self._reserved)

    def committed_heat(self) -> float:
        """Heat of open positions plus what approved, unfilled entries may add."""
        return self.portfolio.heat() + sum(r.heat for r in self._reserved.values())

    async def _decide(self, intent: OrderIntent, price: float) -> bool:
        """Run the gate; on approval hand the intent to the executor. Returns approval."""
        if not await self._judge(intent, price):
            return False
        await self._send(intent)
        return True

    async def _judge(self, intent: OrderIntent, price: float) -> bool:
        """Run the gate and record its decision (an approved entry reserves its room)."""
        self.stats.intents += 1
        ctx = self.risk_context(intent, price)
        denial = self.gate.evaluate(intent, ctx)
        self._decided.add(intent.intent_id)
        self.store.record_decision(intent, denial)
        if denial is not None:
            self.stats.denied += 1
            self.stats.denials_by_check[denial.check] += 1
            self._log_order("order_denied", symbol=intent.symbol, check=denial.check,
                            reason=denial.reason)
            for listener in self._listeners:
                listener(denial)
            if self.settings.durable:
                await self.store.flush()
            return False
        if not intent.reduce_only:
            self._entered_signals.add(intent.signal_id)
            self._order_times.append(self.clock.now_ms())
            cost = intent.amount * ctx.worst_price * (1.0 + ctx.fee_rate)
            self._reserved[intent.intent_id] = Reservation(
                intent.symbol, added_heat(intent, ctx), cost, intent.amount
            )
        return True

    async def _send(self, intent: OrderIntent) -> None:
        self._intents[intent.intent_id] = intent
        await self._apply(await self.executor.submit(intent, self.clock.now_ms()))

    # -- facts ------------------------------------------------------------------

    async def apply(self, facts: list[Fact | OrderClosed]) -> None:
        """Apply facts an executor produced outside ``submit``/``on_market`` (reconciliation)."""
        await self._apply(facts)

    async def _apply(self, facts: list[Fact | OrderClosed] | list[Fact]) -> None:
        for fact in facts:
            if isinstance(fact, OrderSubmitted):
                self.stats.orders += 1
                self._order_intent[fact.order_id] = fact.intent_id
                self._emit(fact)
            elif isinstance(fact, OrderFilled):
                self._on_fill(fact)
                await self.store.set_order_status(fact.order_id, "partially_filled", fact.ts)
            elif isinstance(fact, OrderDenied):
                self.stats.denied += 1
                self.stats.denials_by_check[fact.check] += 1
                self._release(fact.intent_id, fact.symbol)
                self._emit(fact)
            elif isinstance(fact, OrderClosed):  # every terminal state reaches the store
                self._release(fact.intent_id, fact.symbol)
                await self.store.set_order_status(fact.order_id, fact.state.value, fact.ts)
        if facts and self.settings.durable:
            self._since_flush = 0
            await self.store.flush()
        if self._stops_dirty:
            await self._sync_stops()

    def _release(self, intent_id: str, symbol: str) -> None:
        if is_protective_intent(intent_id):
            return  # an exchange-side stop commits nothing; its fills speak for themselves
        self._reserved.pop(intent_id, None)
        intent = self._intents.pop(intent_id, None)
        if intent is None or intent.reduce_only:
            if symbol in self._pending_exits:
                self._stops_dirty.add(symbol)
            self._pending_exits.discard(symbol)
        if intent is None or not intent.reduce_only:
            self._pending_entries.discard(symbol)

    def _on_fill(self, fill: OrderFilled) -> None:
        self.stats.fills += 1
        self._emit(fill)
        intent_id = self._order_intent.get(fill.order_id, fill.order_id)
        reservation = self._reserved.get(intent_id)
        if reservation is not None:
            reservation.take(fill.amount)
            if reservation.amount <= 1e-12:
                del self._reserved[intent_id]
        was_open = self.portfolio.position(fill.symbol).is_open
        self.portfolio.apply_fill(fill)
        pos = self.portfolio.position(fill.symbol)
        if fill.side is Side.SELL:
            self._pending_exits.discard(fill.symbol)
        elif pos.is_open and (not was_open or pos.stop_price is None):
            self._pending_entries.discard(fill.symbol)
            stop, target = self.settings.stops.levels(pos.avg_price, self._atr.get(fill.symbol))
            self.portfolio.set_protection(fill.symbol, stop, target, self.settings.stops.trailing_stop_pct)
        self._stops_dirty.add(fill.symbol)
        self._emit(self.portfolio.position_changed(fill.symbol, fill.ts))
        self._check_breakers(fill.ts)
        self._log_order(
            "order_filled",
            symbol=fill.symbol,
            side=fill.side.value,
            amount=round(fill.amount, 8),
            price=fill.price,
        )
