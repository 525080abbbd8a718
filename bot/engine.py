"""The Engine: one path from market events to stored facts, for backtest, paper and live.

    feed -> buffer -> strategy -> Signal -> sizing -> OrderIntent -> risk gate
         -> executor -> OrderFilled -> portfolio -> store

Per closed candle, in this order (no step sees a candle before it has closed):
1. the candle enters its buffer (invalid or out-of-order candles are rejected);
2. orders resting from the previous close fill against it (at its open);
3. protective exits are judged against the bar's range (intrabar), then trailing
   stops ratchet up with the bar's high;
4. each subscribed strategy evaluates the closed bar (through ``bot.strategy_guard``:
   a strategy that raises is recorded, and disabled after repeated failures); its
   Signal is stored and may become an intent, which the risk gate approves
   (-> executor) or denies (stored);
5. equity is marked at the close and the circuit breakers look at it.
Trades and book updates let resting orders fill, stops trigger and trail between
closes, and reach the strategies that read them (``Strategy.on_market``). Backtest,
paper and live differ only in the Feed, the ExecutionPort and the Clock. Exchange
mode adds ``durable``: facts are flushed as they happen.

The Engine is split by concern: ``bot.engine_state`` (settings, stats, trading
state, breakers, operator halt), ``bot.engine_orders`` (decisions and facts),
``bot.engine_protect`` (stops, targets, trailing, exchange-side stops).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from typing import TypeVar

from bot.buffer import CandleBuffer
from bot.clock import Clock
from bot.engine_orders import OrderFlowMixin
from bot.engine_protect import ProtectionMixin
from bot.engine_state import EngineSettings, EngineStats, Listener, TradingStateMixin
from bot.events import Candle, Fact, MarketEvent, OrderBook, OrderIntent, Signal, SignalExplained, Trade
from bot.execution.base import ExecutionPort
from bot.feeds.base import Feed
from bot.reservations import Reservation
from bot.store import Store
from bot.strategy_guard import StrategyGuard
from risk.breakers import BreakerMemory, Breakers
from risk.gate import RiskGate, RiskLimits, TradingState
from risk.market import MarketRules
from risk.portfolio import Portfolio, Position
from risk.sizing import RollingATR
from strategies.base import BarContext, Strategy

__all__ = ["Engine", "EngineSettings", "EngineStats", "Listener", "Reservation"]

T = TypeVar("T")


class Engine(TradingStateMixin, OrderFlowMixin, ProtectionMixin):
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
        self.paused: dict[str, str] = {}  # symbol -> why its new entries are paused
        limits = gate.limits
        self.breakers = Breakers(limits.daily_loss_limit_pct, limits.max_drawdown_pct)
        self.stats = EngineStats()
        self.buffers: dict[tuple[str, str], CandleBuffer] = {}
        self._routes: dict[tuple[str, str], list[Strategy]] = defaultdict(list)
        # books and trades go to the strategies that read them (``Strategy.market_streams``)
        self._market_routes: dict[tuple[str, str], list[Strategy]] = defaultdict(list)
        for strategy in strategies:
            streams = strategy.market_streams()
            for symbol in strategy.symbols:
                self._routes[(symbol, strategy.timeframe)].append(strategy)
                for stream in streams:
                    self._market_routes[(symbol, stream)].append(strategy)
        self._decided: set[str] = set()
        self._entered_signals: set[str] = set()
        self._intents: dict[str, OrderIntent] = {}  # approved, by intent id
        self._order_intent: dict[str, str] = {}  # order id -> intent id
        self._pending_entries: set[str] = set()
        self._pending_exits: set[str] = set()
        self._order_times: deque[int] = deque()
        self._reserved: dict[str, Reservation] = {}  # intent id -> commitment of a live entry
        self._atr: dict[str, float] = {}  # latest ATR per symbol (sizing, ATR stops)
        self._rolling_atr: dict[tuple[str, str], RollingATR] = {}
        self._listeners: list[Listener] = []
        self._since_flush = 0
        self._stops_dirty: set[str] = set()  # symbols whose exchange-side stop may be stale
        self._syncing_stops = False
        self._saved_breakers: BreakerMemory | None = None
        self._last_state_poll: int | None = None
        # a simulated clock follows the candles (backtest, paper); a live one does not
        self._advance_clock: Callable[[int], None] | None = getattr(clock, "advance_to", None)
        self._polls_state = self.settings.state_poll_interval_ms > 0  # operator halts (daemon)
        self.guard = StrategyGuard(self.settings.max_strategy_failures)  # every call into strategy code

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
            for strategy in self.strategies:  # what a prepared replay held back (backtests)
                for explained in strategy.deferred_explanations():
                    self._emit(explained)
        finally:
            await self.store.flush()
        return self.stats

    async def on_event(self, event: MarketEvent) -> None:
        if self._polls_state:
            await self.poll_trading_state()
        if isinstance(event, Candle):
            await self.on_candle(event)
        elif isinstance(event, Trade):
            for strategy in self._market_routes.get((event.symbol, "trades"), ()):
                strategy.on_market(event)
            await self._on_price(event, event.symbol, event.price, event.ts)
        elif isinstance(event, OrderBook):
            for strategy in self._market_routes.get((event.symbol, "order_book"), ()):
                strategy.on_market(event)
            if event.best_bid is not None:  # a long exits into the bid
                await self._on_price(event, event.symbol, event.best_bid, event.ts)
        if self.settings.durable or self._since_flush >= self.settings.flush_every:
            self._since_flush = 0
            await self.store.flush()

    # -- candles ----------------------------------------------------------------

    async def on_candle(self, candle: Candle) -> None:
        key = (candle.symbol, candle.timeframe)
        buffer = self._buffer(key)
        if buffer.append(candle) is not None:
            self.stats.rejected += 1
            return
        self.stats.candles += 1
        if self.stats.first_ts is None:
            self.stats.first_ts = candle.ts
        self.stats.last_ts = candle.ts

        facts = await self.executor.on_market(candle)  # fills of orders resting until this bar
        if facts:
            await self._apply(facts)
        self.portfolio.mark(candle.symbol, candle.close)
        if self._stops_dirty or candle.symbol in self.portfolio.positions:  # else nothing to protect
            await self._protect_on_bar(candle)
        rolling = self._rolling_atr.get(key)
        if rolling is None:  # first candle of this series here: start from what the buffer holds
            rolling = self._rolling_atr[key] = RollingATR(self.settings.atr_period)
            w = buffer.window(self.settings.atr_period + 1)
            atr = rolling.seed(w.high, w.low, w.close)
        else:
            atr = rolling.update(candle.high, candle.low, candle.close)
        if atr is not None:
            self._atr[candle.symbol] = atr

        close_ts = candle.close_ts
        if self._advance_clock is not None:
            self._advance_clock(close_ts)
        for strategy in self._routes.get(key, ()):
            if len(buffer) < strategy.warmup or not self.guard.active(strategy):
                continue
            ctx = self._context(strategy, candle, buffer)
            signal = self._guarded(strategy, "evaluate", candle, lambda s=strategy: s.evaluate(ctx))
            if signal is not None:  # a backfilled bar is history: it may exit, never enter
                await self.on_signal(signal, candle.close, may_enter=not candle.backfilled)
                attributions = self._guarded(  # after the order left
                    strategy, "explain", candle, lambda s=strategy, sig=signal: s.explain(sig))
                if attributions:
                    self._emit(SignalExplained(signal.signal_id, signal.ts, attributions))
        snapshot = self.portfolio.snapshot(close_ts)
        self._check_breakers(close_ts, snapshot.equity)
        self._emit(snapshot)

    def _buffer(self, key: tuple[str, str]) -> CandleBuffer:
        buffer = self.buffers.get(key)
        if buffer is None:
            buffer = self.buffers[key] = CandleBuffer(*key, self.settings.buffer_capacity)
        return buffer

    def _context(self, strategy: Strategy, candle: Candle, buffer: CandleBuffer) -> BarContext:
        return BarContext(
            candle=candle,
            window=buffer.window(max(strategy.warmup, 2)),
            position=self.portfolio.position(candle.symbol).amount,
        )

    def _guarded(self, strategy: Strategy, what: str, candle: Candle, fn: Callable[[], T]) -> T | None:
        result, failed = self.guard.call(strategy, what, candle.symbol, candle.ts, fn)
        if failed is not None:
            self.stats.strategy_failures += 1
            self._emit(failed)
        return result

    # -- restart and operator actions ----------------------------------------------

    def history_bars(self, symbol: str, timeframe: str) -> int:
        """Closed bars of a series its strategies must see before trading to be warm."""
        return max((s.history_bars() for s in self._routes.get((symbol, timeframe), ())), default=0)

    def warm(self, candles: Iterable[Candle]) -> int:
        """Absorb closed history before trading (a restart): candle buffers and every routed
        strategy's state (``Strategy.warm``). No signal, no order, no stored fact (but a
        strategy's failure, as on live bars); returns how many candles were accepted."""
        accepted = 0
        for candle in candles:
            key = (candle.symbol, candle.timeframe)
            buffer = self._buffer(key)
            if buffer.append(candle) is not None:
                continue
            accepted += 1
            for strategy in self._routes.get(key, ()):
                if len(buffer) >= strategy.warmup and self.guard.active(strategy):
                    ctx = self._context(strategy, candle, buffer)
                    self._guarded(strategy, "warm", candle, lambda s=strategy, c=ctx: s.warm(c))
        return accepted

    def restore(
        self,
        positions: Iterable[Position],
        decided: Iterable[str] = (),
        entered_signals: Iterable[str] = (),
        open_intents: Iterable[tuple[str, OrderIntent]] = (),
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

    def reconfigure(self, limits: RiskLimits, settings: EngineSettings) -> None:
        """A reloaded configuration: a new risk gate and breakers (which keep their memory:
        day-start equity and peak) and new settings; ATR trackers restart from the buffers
        when their period changed."""
        memory = self.breakers.memory()
        self.gate = RiskGate(limits, self.gate.checks)
        self.breakers = Breakers(limits.daily_loss_limit_pct, limits.max_drawdown_pct)
        self.breakers.restore(memory)
        if settings.atr_period != self.settings.atr_period:
            self._rolling_atr.clear()
        self.settings = settings

    def unprotected(self) -> list[str]:
        """Open positions without a stop (must be empty whenever the engine trades)."""
        return [p.symbol for p in self.portfolio.open_positions() if p.stop_price is None]

    async def flatten(self, reason: str = "flatten") -> None:
        """Close every open position with a reducing market order (halt --flatten)."""
        for pos in self.portfolio.open_positions():
            await self.exit_position(pos.symbol, reason)

    async def exit_position(self, symbol: str, reason: str = "flatten") -> bool:
        """Close ``symbol``'s position with a reducing market order through the gate; ``False``
        when there is none or an exit is already on its way."""
        pos = self.portfolio.position(symbol)
        if not pos.is_open or symbol in self._pending_exits:
            return False
        ts = self.clock.now_ms()
        price = self.portfolio.last_price.get(symbol, pos.avg_price)
        await self._exit(symbol, pos.amount, "flatten", price, ts, f"{reason}-{ts}")
        return True
