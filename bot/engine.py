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
5. equity is marked at the close and the circuit breakers look at it.
Trades and book updates let resting orders fill, stops trigger and trail between
closes. Backtest, paper and live differ only in the Feed, the ExecutionPort and
the Clock. Exchange mode adds ``durable``: facts are flushed as they happen.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable
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
from bot.execution.orders import OrderClosed
from bot.feeds.base import Feed
from bot.store import Store
from risk.breakers import Breakers, escalate
from risk.checks import added_heat
from risk.gate import RiskContext, RiskGate, TradingState
from risk.market import MarketRules
from risk.portfolio import Portfolio, Position
from risk.sizing import agreement, agreement_factor, average_true_range, entry_amount
from risk.stops import StopRules, exit_on_bar, exit_on_price, trailed_stop
from strategies.base import BarContext, Strategy

log = structlog.get_logger(__name__)

Listener = Callable[[Fact | Signal], None]
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class EngineSettings:
    exchange: str = "binance"
    fee_rate: float = 0.001
    stops: StopRules = field(default_factory=StopRules)
    risk_per_trade_pct: float | None = None
    buffer_capacity: int = 1024
    flush_every: int = 1000  # queued rows between store transactions
    slippage_margin_bps: float = 50.0  # sizing and caps assume fills this much worse
    atr_period: int = 14
    agreement_floor: float = 0.5  # ensemble agreement at or below this sizes to zero
    durable: bool = False  # flush every executor fact at once (exchange modes)


@dataclass(slots=True)
class Reservation:
    """What an approved, not yet filled entry commits: its heat, cash and a position slot."""

    symbol: str
    heat: float
    cost: float
    amount: float

    def take(self, filled: float) -> None:
        share = 1.0 if self.amount <= 0 else min(1.0, filled / self.amount)
        self.heat *= 1.0 - share
        self.cost *= 1.0 - share
        self.amount = max(0.0, self.amount - filled)


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
        markets: dict[str, MarketRules] | None = None,
    ) -> None:
        self.strategies = strategies
        self.gate = gate
        self.executor = executor
        self.portfolio = portfolio
        self.store = store
        self.clock = clock
        self.settings = settings or EngineSettings()
        self.markets = markets or {}
        for symbol, rules in self.markets.items():
            portfolio.dust[symbol] = rules.amount_step or 0.0
        self.state = TradingState.ACTIVE
        self.state_reason = ""
        limits = gate.limits
        self.breakers = Breakers(limits.daily_loss_limit_pct, limits.max_drawdown_pct)
        self.stats = EngineStats()
        self.buffers: dict[tuple[str, str], CandleBuffer] = {}
        self._routes: dict[tuple[str, str], list[Strategy]] = defaultdict(list)
        for strategy in strategies:
            for symbol in strategy.symbols:
                self._routes[(symbol, strategy.timeframe)].append(strategy)
        self._decided: set[str] = set()
        self._entered_signals: set[str] = set()
        self._intents: dict[str, OrderIntent] = {}  # approved, by intent id
        self._order_intent: dict[str, str] = {}  # order id -> intent id
        self._pending_entries: set[str] = set()
        self._pending_exits: set[str] = set()
        self._order_times: deque[int] = deque()
        self._reserved: dict[str, Reservation] = {}  # intent id -> commitment of a live entry
        self._atr: dict[str, float] = {}
        self._listeners: list[Listener] = []
        self._since_flush = 0

    # -- wiring -----------------------------------------------------------------

    @property
    def margin(self) -> float:
        return self.settings.slippage_margin_bps / 10_000.0

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
            if event.best_bid is not None:  # a long exits into the bid
                await self._on_price(event, event.symbol, event.best_bid, event.ts)
        if self.settings.durable or self._since_flush >= self.settings.flush_every:
            self._since_flush = 0
            await self.store.flush()

    # -- trading state ------------------------------------------------------------

    def set_state(self, state: TradingState, reason: str, force: bool = False) -> None:
        """Move to ``state`` (only escalates unless ``force``: an operator's resume)."""
        new = state if force else escalate(self.state, state)
        if new is self.state:
            return
        log.warning("trading_state_changed", old=self.state.value, new=new.value, reason=reason)
        self.state, self.state_reason = new, reason

    def _check_breakers(self, ts: int) -> None:
        if self.state is TradingState.REDUCING and self.breakers.daily_reset_due(ts):
            self.breakers.reducing_day = None
            self.set_state(TradingState.ACTIVE, "new UTC day: daily loss limit reset", force=True)
        due = self.breakers.update(ts, self.portfolio.equity())
        if due is not None:
            self.set_state(*due)

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
        n = self.settings.atr_period
        if len(buffer) > n:
            w = buffer.window(n + 1)
            atr = average_true_range(w.high, w.low, w.close, n)
            if atr is not None:
                self._atr[candle.symbol] = atr

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
                await self.on_signal(signal, candle.close)
        self._check_breakers(candle.close_ts)
        self._emit(self.portfolio.snapshot(candle.close_ts))

    async def _protect_on_bar(self, candle: Candle) -> None:
        pos = self.portfolio.position(candle.symbol)
        hit = exit_on_bar(pos, candle.open, candle.high, candle.low)
        if hit is not None:
            if candle.symbol not in self._pending_exits:
                leg, price = hit
                await self._exit(candle.symbol, pos.amount, leg, price, candle.ts, f"{candle.ts}")
            return
        self._trail(candle.symbol, candle.high, candle.close_ts)

    def _trail(self, symbol: str, high: float, ts: int) -> None:
        new_stop = trailed_stop(self.portfolio.position(symbol), high)
        if new_stop is not None and self.portfolio.raise_stop(symbol, new_stop):
            self._emit(self.portfolio.position_changed(symbol, ts))

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

    # -- decisions --------------------------------------------------------------

    async def on_signal(self, signal: Signal, price: float) -> None:
        """Act on a strategy's signal at reference ``price`` (also for external signal sources)."""
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
        atr = self._atr.get(signal.symbol)
        stop, target = self.settings.stops.levels(price, atr)
        factor = agreement_factor(
            agreement(signal.votes, signal.direction.value), self.settings.agreement_floor
        )
        amount = entry_amount(
            equity=self.portfolio.equity(),
            price=price,
            size_pct=signal.size_pct * factor,
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
        rules = self.markets.get(symbol)
        amount = rules.round_amount(amount) if rules is not None else amount
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
        )

    def committed_heat(self) -> float:
        """Heat of open positions plus what approved, unfilled entries may add."""
        return self.portfolio.heat() + sum(r.heat for r in self._reserved.values())

    async def _decide(self, intent: OrderIntent, price: float) -> bool:
        """Run the gate; on approval hand the intent to the executor. Returns approval."""
        self.stats.intents += 1
        ctx = self.risk_context(intent, price)
        denial = self.gate.evaluate(intent, ctx)
        self._decided.add(intent.intent_id)
        self.store.record_decision(intent, denial)
        if denial is not None:
            self.stats.denied += 1
            self.stats.denials_by_check[denial.check] += 1
            log.info("order_denied", symbol=intent.symbol, check=denial.check, reason=denial.reason)
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
        self._intents[intent.intent_id] = intent
        await self._apply(await self.executor.submit(intent, self.clock.now_ms()))
        return True

    # -- restart and operator actions ----------------------------------------------

    def restore(
        self,
        positions: Iterable[Position],
        decided: Iterable[str] = (),
        entered_signals: Iterable[str] = (),
        open_intents: Iterable[tuple[str, OrderIntent]] = (),
        state: TradingState = TradingState.ACTIVE,
        reason: str = "",
    ) -> None:
        """Resume after a restart: positions (with their stops) first, then memory of decisions."""
        for pos in positions:
            self.portfolio.restore(pos)
        self._decided.update(decided)
        self._entered_signals.update(entered_signals)
        for order_id, intent in open_intents:
            self._intents[intent.intent_id] = intent
            self._order_intent[order_id] = intent.intent_id
            (self._pending_exits if intent.reduce_only else self._pending_entries).add(intent.symbol)
        if state is not TradingState.ACTIVE:
            self.set_state(state, reason)

    def unprotected(self) -> list[str]:
        """Open positions without a stop (must be empty whenever the engine trades)."""
        return [p.symbol for p in self.portfolio.open_positions() if p.stop_price is None]

    async def flatten(self, reason: str = "flatten") -> None:
        """Close every open position with a reducing market order (halt --flatten)."""
        ts = self.clock.now_ms()
        for pos in self.portfolio.open_positions():
            if pos.symbol in self._pending_exits:
                continue
            price = self.portfolio.last_price.get(pos.symbol, pos.avg_price)
            await self._exit(pos.symbol, pos.amount, "flatten", price, ts, f"{reason}-{ts}")

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
            elif isinstance(fact, OrderDenied):
                self.stats.denied += 1
                self.stats.denials_by_check[fact.check] += 1
                self._release(fact.intent_id, fact.symbol)
                self._emit(fact)
            elif isinstance(fact, OrderClosed):
                self._release(fact.intent_id, fact.symbol)
        if facts and self.settings.durable:
            self._since_flush = 0
            await self.store.flush()

    def _release(self, intent_id: str, symbol: str) -> None:
        self._reserved.pop(intent_id, None)
        intent = self._intents.get(intent_id)
        if intent is None or intent.reduce_only:
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
        self._emit(self.portfolio.position_changed(fill.symbol, fill.ts))
        self._check_breakers(fill.ts)
        log.info(
            "order_filled",
            symbol=fill.symbol,
            side=fill.side.value,
            amount=round(fill.amount, 8),
            price=fill.price,
        )
