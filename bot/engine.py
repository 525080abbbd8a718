"""The Engine: one path from market events to stored facts, for backtest, paper and live.

    feed -> buffer -> strategy -> Signal -> sizing -> OrderIntent -> risk gate
         -> executor -> OrderFilled -> portfolio -> store

Per closed candle, in this order (no step sees a candle before it has closed):
1. the candle enters its buffer (invalid or out-of-order candles are rejected);
2. orders resting from the previous close fill against it (at its open);
3. protective exits are judged against the bar's range (intrabar), then trailing
   stops ratchet up with the bar's high;
4. each subscribed strategy evaluates the closed bar; its Signal is stored and may
   become an intent, which the risk gate approves (-> executor) or denies (stored);
5. equity is marked at the close.
Trades and book updates let resting orders fill and stops trigger between closes.
Backtest, paper and live differ only in the Feed, the ExecutionPort and the Clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from bot.buffer import CandleBuffer
from bot.clock import Clock
from bot.events import (
    Candle,
    Direction,
    Fact,
    MarketEvent,
    OrderBook,
    OrderDenied,
    OrderFilled,
    OrderIntent,
    OrderSubmitted,
    OrderType,
    Side,
    Signal,
    Trade,
)
from bot.execution.base import ExecutionPort
from bot.feeds.base import Feed
from bot.store import Store
from risk.gate import RiskContext, RiskGate, TradingState
from risk.portfolio import Portfolio
from risk.sizing import entry_amount
from risk.stops import StopRules, exit_on_bar, exit_on_price, trailed_stop
from strategies.base import BarContext, Strategy

log = structlog.get_logger(__name__)

Listener = Callable[[Fact | Signal], None]


@dataclass(frozen=True, slots=True)
class EngineSettings:
    exchange: str = "binance"
    fee_rate: float = 0.001
    stops: StopRules = field(default_factory=StopRules)
    risk_per_trade_pct: float | None = None
    buffer_capacity: int = 1024
    flush_every: int = 1000  # queued rows between store transactions


@dataclass
class EngineStats:
    candles: int = 0
    rejected: int = 0
    signals: int = 0
    intents: int = 0
    denied: int = 0
    orders: int = 0
    fills: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    denials_by_check: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Engine:
    def __init__(
        self,
        *,
        strategies: list[Strategy],
        gate: RiskGate,
        executor: ExecutionPort,
        portfolio: Portfolio,
        store: Store,
        clock: Clock,
        settings: EngineSettings | None = None,
    ) -> None:
        self.strategies = strategies
        self.gate = gate
        self.executor = executor
        self.portfolio = portfolio
        self.store = store
        self.clock = clock
        self.settings = settings or EngineSettings()
        self.state = TradingState.ACTIVE
        self.stats = EngineStats()
        self.buffers: dict[tuple[str, str], CandleBuffer] = {}
        self._routes: dict[tuple[str, str], list[Strategy]] = defaultdict(list)
        for strategy in strategies:
            for symbol in strategy.symbols:
                self._routes[(symbol, strategy.timeframe)].append(strategy)
        self._decided: set[str] = set()
        self._orders: dict[str, OrderIntent] = {}
        self._pending_entries: set[str] = set()
        self._pending_exits: set[str] = set()
        self._listeners: list[Listener] = []
        self._since_flush = 0

    # -- wiring -----------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` with every signal and fact (metrics, notifications)."""
        self._listeners.append(listener)

    def _emit(self, item: Fact | Signal) -> None:
        self.store.record(item)
        self._since_flush += 1
        for listener in self._listeners:
            listener(item)

    async def run(self, feed: Feed) -> EngineStats:
        """Consume ``feed`` to its end (or until cancelled); state is flushed either way."""
        try:
            async for event in feed:
                await self.on_event(event)
        finally:
            await self.store.flush()
        return self.stats

    async def on_event(self, event: MarketEvent) -> None:
        if isinstance(event, Candle):
            await self.on_candle(event)
        elif isinstance(event, Trade):
            await self._on_price(event, event.symbol, event.price, event.ts)
        elif isinstance(event, OrderBook):
            if event.best_bid is not None:
                await self._on_price(event, event.symbol, event.best_bid, event.ts)
        if self._since_flush >= self.settings.flush_every:
            self._since_flush = 0
            await self.store.flush()

    # -- candles ----------------------------------------------------------------

    async def on_candle(self, candle: Candle) -> None:
        key = (candle.symbol, candle.timeframe)
        buffer = self.buffers.get(key)
        if buffer is None:
            buffer = self.buffers[key] = CandleBuffer(
                candle.symbol, candle.timeframe, self.settings.buffer_capacity
            )
        if buffer.append(candle) is not None:
            self.stats.rejected += 1
            return
        self.stats.candles += 1
        if self.stats.first_ts is None:
            self.stats.first_ts = candle.ts
        self.stats.last_ts = candle.ts

        await self._apply(await self.executor.on_market(candle))
        self.portfolio.mark(candle.symbol, candle.close)
        await self._protect_on_bar(candle)

        if hasattr(self.clock, "advance_to"):
            self.clock.advance_to(candle.close_ts)  # type: ignore[attr-defined]
        for strategy in self._routes.get(key, ()):
            if len(buffer) < strategy.warmup:
                continue
            ctx = BarContext(
                candle=candle,
                window=buffer.window(max(strategy.warmup, 2)),
                position=self.portfolio.position(candle.symbol).amount,
            )
            signal = strategy.evaluate(ctx)
            if signal is not None:
                await self._on_signal(signal, candle.close)
        self._emit(self.portfolio.snapshot(candle.close_ts))

    async def _protect_on_bar(self, candle: Candle) -> None:
        pos = self.portfolio.position(candle.symbol)
        hit = exit_on_bar(pos, candle.open, candle.high, candle.low)
        if hit is not None:
            leg, price = hit
            await self._exit(candle.symbol, pos.amount, leg, price, candle.ts, f"{candle.ts}")
            return
        new_stop = trailed_stop(pos, candle.high)
        if new_stop is not None and self.portfolio.raise_stop(candle.symbol, new_stop):
            self._emit(self.portfolio.position_changed(candle.symbol, candle.close_ts))

    async def _on_price(self, event: MarketEvent, symbol: str, price: float, ts: int) -> None:
        await self._apply(await self.executor.on_market(event))
        pos = self.portfolio.position(symbol)
        hit = exit_on_price(pos, price)
        if hit is not None:
            await self._exit(symbol, pos.amount, hit[0], hit[1], ts, f"{ts}")

    # -- decisions --------------------------------------------------------------

    async def _on_signal(self, signal: Signal, price: float) -> None:
        self.stats.signals += 1
        self._emit(signal)
        symbol = signal.symbol
        held = self.portfolio.position(symbol).amount
        if signal.direction is Direction.FLAT and held > 0 and symbol not in self._pending_exits:
            await self._exit(symbol, held, "exit", price, signal.ts, signal.signal_id)
        elif (
            signal.direction is Direction.LONG
            and held <= 0
            and signal.size_pct > 0
            and symbol not in self._pending_entries
        ):
            await self._enter(signal, price)

    async def _enter(self, signal: Signal, price: float) -> None:
        stop, target = self.settings.stops.levels(price)
        amount = entry_amount(
            equity=self.portfolio.equity(),
            price=price,
            size_pct=signal.size_pct,
            max_position_pct=self.gate.limits.max_position_pct,
            cash=self.portfolio.cash,
            fee_rate=self.settings.fee_rate,
            stop_price=stop,
            risk_per_trade_pct=self.settings.risk_per_trade_pct,
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
        if not await self._decide(intent, price):
            self._pending_exits.discard(symbol)

    async def _decide(self, intent: OrderIntent, price: float) -> bool:
        """Run the gate; on approval hand the intent to the executor. Returns approval."""
        self.stats.intents += 1
        ctx = RiskContext(
            state=self.state,
            equity=self.portfolio.equity(),
            cash=self.portfolio.cash,
            price=price,
            position=self.portfolio.position(intent.symbol).amount,
            open_positions=len(self.portfolio.open_positions()),
            heat=self.portfolio.heat(),
            fee_rate=self.settings.fee_rate,
            seen_intents=self._decided,
        )
        denial = self.gate.evaluate(intent, ctx)
        self._decided.add(intent.intent_id)
        self.store.record_decision(intent, denial)
        if denial is not None:
            self.stats.denied += 1
            self.stats.denials_by_check[denial.check] += 1
            log.info("order_denied", symbol=intent.symbol, check=denial.check, reason=denial.reason)
            for listener in self._listeners:
                listener(denial)
            return False
        self._orders[intent.intent_id] = intent
        await self._apply(await self.executor.submit(intent, self.clock.now_ms()))
        return True

    # -- facts ------------------------------------------------------------------

    async def _apply(self, facts: list[Fact]) -> None:
        for fact in facts:
            if isinstance(fact, OrderSubmitted):
                self.stats.orders += 1
                self._emit(fact)
            elif isinstance(fact, OrderFilled):
                self._on_fill(fact)
            elif isinstance(fact, OrderDenied):
                self.stats.denied += 1
                self.stats.denials_by_check[fact.check] += 1
                self._emit(fact)

    def _on_fill(self, fill: OrderFilled) -> None:
        self.stats.fills += 1
        self._emit(fill)
        intent = self._orders.get(fill.order_id)
        self.portfolio.apply_fill(fill)
        if fill.side is Side.SELL:
            self._pending_exits.discard(fill.symbol)
        if intent is not None and intent.leg == "entry":
            self._pending_entries.discard(fill.symbol)
            if fill.amount > 0:
                stop, target = self.settings.stops.levels(
                    self.portfolio.position(fill.symbol).avg_price
                )
                self.portfolio.set_protection(
                    fill.symbol, stop, target, self.settings.stops.trailing_stop_pct
                )
        self._emit(self.portfolio.position_changed(fill.symbol, fill.ts))
        log.info(
            "order_filled",
            symbol=fill.symbol,
            side=fill.side.value,
            amount=round(fill.amount, 8),
            price=fill.price,
        )
