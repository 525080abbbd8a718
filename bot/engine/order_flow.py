"""The order flow: signals and exit requests become intents, the risk gate judges them, the
executor places them, and its facts (orders, fills, denials, closed orders) move the ledger,
the portfolio and the protection.

    Signal / ExitRequest -> OrderIntent -> RiskGate -> ExecutionPort -> facts -> apply

What an approved, unfilled entry commits is held in the ``OrderLedger`` until it fills or
closes. An exit is judged before the exchange-side stop is touched (a denied exit leaves
it resting); the stop is then released, and if it had already closed the position no
second exit is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import structlog

from bot.engine.settings import EngineSettings, EngineStats
from bot.core.events import (
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
from bot.core.orders import OrderClosed, is_protective_intent
from bot.engine.ledger import OrderLedger
from bot.core.ports import Clock, ExecutionPort
from bot.engine.protection import ExitRequest, Protection
from bot.engine.recorder import Recorder
from bot.engine.reservations import Reservation
from risk.checks import added_heat
from risk.gate import RiskContext, RiskGate
from risk.market import MarketRules
from risk.portfolio import Portfolio
from risk.sizing import entry_amount
from risk.trading_state import TradingStateController

log = structlog.get_logger("bot.engine.engine")


class OrderFlow:
    def __init__(self, *, gate: RiskGate, executor: ExecutionPort, portfolio: Portfolio,
                 ledger: OrderLedger, protection: Protection, trading: TradingStateController,
                 recorder: Recorder, clock: Clock, settings: EngineSettings,
                 markets: dict[str, MarketRules], stats: EngineStats,
                 on_fill: Callable[[int], None]) -> None:
        self.gate = gate
        self.executor = executor
        self.portfolio = portfolio
        self.ledger = ledger
        self.protection = protection
        self.trading = trading
        self.recorder = recorder
        self.clock = clock
        self.settings = settings
        self.markets = markets
        self.stats = stats
        self._on_fill = on_fill  # a fill moved equity: the breakers look (the Engine's)
        self.atr: dict[str, float] = {}  # latest ATR per symbol (sizing, ATR stops)

    def reconfigure(self, gate: RiskGate, settings: EngineSettings) -> None:
        self.gate, self.settings = gate, settings

    def note_atr(self, symbol: str, atr: float) -> None:
        self.atr[symbol] = atr

    @property
    def margin(self) -> float:
        return self.settings.slippage_margin_bps / 10_000.0

    def _log_order(self, event: str, **kw: Any) -> None:
        (log.info if self.settings.orders_at_info else log.debug)(event, **kw)

    # -- decisions ----------------------------------------------------------------------------

    async def on_signal(self, signal: Signal, price: float, may_enter: bool = True) -> None:
        """Act on a signal at reference ``price``; ``may_enter=False`` (a backfilled bar): exits only."""
        self.stats.signals += 1
        self.recorder.emit(signal)
        symbol = signal.symbol
        held = self.portfolio.position(symbol).amount
        if signal.direction is Direction.FLAT and held > 0 and not self.ledger.exit_pending(symbol):
            await self.exit(ExitRequest(symbol, held, "exit", price, signal.ts, signal.signal_id))
        elif (
            may_enter
            and signal.direction is Direction.LONG
            and held <= 0
            and signal.size_pct > 0
            and not self.ledger.entry_pending(symbol)
        ):
            await self._enter(signal, price)

    async def _enter(self, signal: Signal, price: float) -> None:
        stop, target = self.settings.stops.levels(price, self.atr.get(signal.symbol))
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
            intent_id=f"{signal.signal_id}:entry", signal_id=signal.signal_id, symbol=signal.symbol,
            side=Side.BUY, amount=amount, order_type=OrderType.MARKET, price=price, stop_price=stop,
            take_profit=target, strength=signal.strength, ts=signal.ts, leg="entry",
        )
        self.ledger.begin_entry(signal.symbol)  # before submit: a fill may come at once
        if not await self._judge(intent, price):
            self.ledger.end_entry(signal.symbol)
            return
        await self._send(intent)

    async def exit(self, request: ExitRequest) -> None:
        """Close (part of) a position with a reducing market order through the gate."""
        symbol = request.symbol
        intent = OrderIntent(
            intent_id=f"{request.origin}:{symbol}:{request.leg}", signal_id=request.origin, symbol=symbol,
            side=Side.SELL, amount=self._exit_amount(symbol, request.amount), order_type=OrderType.MARKET,
            price=request.price, reduce_only=True, strength=100.0, ts=request.ts, leg=request.leg,
        )
        self.ledger.begin_exit(symbol)
        # judged before the exchange-side stop is touched: a denied exit leaves it resting
        if not await self._judge(intent, request.price):
            self.ledger.end_exit(symbol)
            return
        if not await self._release_exchange_stop(symbol):
            self.ledger.end_exit(symbol)
            return  # the exchange-side stop already closed the position
        left = self._exit_amount(symbol, intent.amount)
        await self._send(replace(intent, amount=left) if left < intent.amount else intent)

    def _exit_amount(self, symbol: str, amount: float) -> float:
        amount = min(amount, self.portfolio.position(symbol).amount)
        rules = self.markets.get(symbol)
        return rules.round_amount(amount) if rules is not None else amount

    def risk_context(self, intent: OrderIntent, price: float) -> RiskContext:
        now = self.clock.now_ms()
        portfolio, ledger = self.portfolio, self.ledger
        marked = portfolio.snapshot(now)  # equity and heat in one pass (equal to equity() and heat())
        held = {p.symbol for p in portfolio.open_positions()} | ledger.reserved_symbols()
        return RiskContext(
            state=self.trading.state,
            equity=marked.equity,
            cash=portfolio.cash - ledger.reserved_cost(),
            price=price,
            position=portfolio.position(intent.symbol).amount,
            open_positions=len(held),
            heat=marked.heat + ledger.reserved_heat(),  # committed_heat()
            fee_rate=self.settings.fee_rate,
            seen_intents=ledger.decided,
            entered_signals=ledger.entered_signals,
            orders_last_minute=ledger.entries_last_minute(now),
            market=self.markets.get(intent.symbol),
            slippage_margin=self.margin,
            paused=self.trading.paused.get(intent.symbol),
        )

    def committed_heat(self) -> float:
        """Heat of open positions plus what approved, unfilled entries may add."""
        return self.portfolio.heat() + self.ledger.reserved_heat()

    async def _judge(self, intent: OrderIntent, price: float) -> bool:
        """Run the gate and record its decision (an approved entry reserves its room)."""
        self.stats.intents += 1
        ctx = self.risk_context(intent, price)
        denial = self.gate.evaluate(intent, ctx)
        self.ledger.judged(intent.intent_id)
        self.recorder.sink.record_decision(intent, denial)
        if denial is not None:
            self.stats.denied += 1
            self.stats.denials_by_check[denial.check] += 1
            self._log_order("order_denied", symbol=intent.symbol, check=denial.check, reason=denial.reason)
            self.recorder.tell(denial)
            if self.settings.durable:
                await self.recorder.flush()
            return False
        if not intent.reduce_only:
            cost = intent.amount * ctx.worst_price * (1.0 + ctx.fee_rate)
            reservation = Reservation(intent.symbol, added_heat(intent, ctx), cost, intent.amount)
            self.ledger.approved_entry(intent, reservation, self.clock.now_ms())
        return True

    async def _send(self, intent: OrderIntent) -> None:
        self.ledger.sent(intent)
        await self.apply(await self.executor.submit(intent, self.clock.now_ms()))

    # -- facts --------------------------------------------------------------------------------

    async def apply(self, facts: list[Fact | OrderClosed] | list[Fact]) -> None:
        """Apply an executor's facts; then bring stale exchange-side stops in line."""
        for fact in facts:
            if isinstance(fact, OrderSubmitted):
                self.stats.orders += 1
                self.ledger.submitted(fact.order_id, fact.intent_id)
                self.recorder.emit(fact)
            elif isinstance(fact, OrderFilled):
                self._on_filled(fact)
                await self.recorder.sink.set_order_status(fact.order_id, "partially_filled", fact.ts)
            elif isinstance(fact, OrderDenied):
                self.stats.denied += 1
                self.stats.denials_by_check[fact.check] += 1
                self._release(fact.intent_id, fact.symbol)
                self.recorder.emit(fact)
            elif isinstance(fact, OrderClosed):  # every terminal state reaches the store
                self._release(fact.intent_id, fact.symbol)
                await self.recorder.sink.set_order_status(fact.order_id, fact.state.value, fact.ts)
        if facts and self.settings.durable:
            await self.recorder.flush()
        if self.protection.stale:
            await self.sync_stops()

    def _release(self, intent_id: str, symbol: str) -> None:
        if is_protective_intent(intent_id):
            return  # an exchange-side stop commits nothing; its fills speak for themselves
        if self.ledger.closed(intent_id, symbol):
            self.protection.touch(symbol)

    def _on_filled(self, fill: OrderFilled) -> None:
        self.stats.fills += 1
        self.recorder.emit(fill)
        self.ledger.filled(fill.order_id, fill.amount)
        was_open = self.portfolio.position(fill.symbol).is_open
        self.portfolio.apply_fill(fill)
        pos = self.portfolio.position(fill.symbol)
        if fill.side is Side.SELL:
            self.ledger.end_exit(fill.symbol)
        elif pos.is_open and (not was_open or pos.stop_price is None):
            self.ledger.end_entry(fill.symbol)
            stop, target = self.settings.stops.levels(pos.avg_price, self.atr.get(fill.symbol))
            self.portfolio.set_protection(fill.symbol, stop, target, self.settings.stops.trailing_stop_pct)
        self.protection.touch(fill.symbol)
        self.recorder.emit(self.portfolio.position_changed(fill.symbol, fill.ts))
        self._on_fill(fill.ts)
        self._log_order("order_filled", symbol=fill.symbol, side=fill.side.value, amount=round(fill.amount, 8),
                        price=fill.price)

    # -- exchange-side stops ------------------------------------------------------------------

    async def sync_stops(self) -> None:
        """Bring each touched symbol's exchange stop in line with its position (idempotent)."""
        if not self.protection.stale:  # nothing touched: nothing to bring in line (most bars)
            return
        with self.protection.mirroring() as mine:
            if not mine:
                return
            while (symbol := self.protection.next_stale()) is not None:
                if self.ledger.exit_pending(symbol):
                    continue  # an exit is in flight; its outcome touches the symbol again
                await self.apply(await self.protection.mirror(symbol))

    async def _release_exchange_stop(self, symbol: str) -> bool:
        """Cancel the symbol's exchange stop before another exit; False if it already closed us."""
        if self.protection.port is None:
            return True
        with self.protection.held():  # the stop's own facts must not re-arm it
            await self.apply(await self.protection.release(symbol))
        self.protection.settled(symbol)
        return self.portfolio.position(symbol).is_open
