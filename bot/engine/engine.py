"""The Engine: one path from market events to stored facts, for backtest, paper and live.

    feed -> buffer -> strategy -> Signal -> sizing -> OrderIntent -> risk gate
         -> executor -> OrderFilled -> portfolio -> store

Per closed candle, in this order (no step sees a candle before it has closed):
1. the candle enters its buffer (invalid or out-of-order candles are rejected);
2. orders resting from the previous close fill against it (at its open);
3. protective exits are judged against the bar's range (intrabar), then trailing
   stops ratchet up with the bar's high;
4. each subscribed strategy evaluates the closed bar (through ``bot.engine.strategy_guard``:
   a strategy that raises is recorded, and disabled after repeated failures); its
   Signal is stored and may become an intent, which the risk gate approves
   (-> executor) or denies (stored);
5. equity is marked at the close and the circuit breakers look at it.
Trades and book updates let resting orders fill, stops trigger and trail between
closes, and reach the strategies that read them (``Strategy.on_market``). Backtest,
paper and live differ only in the Feed, the ExecutionPort and the Clock. Exchange
mode adds ``durable``: facts are flushed as they happen.

The Engine is a short pipeline over parts that own their state: the ``OrderLedger``
(``bot.engine.ledger``: decisions, orders in flight, reservations), the ``OrderFlow``
(``bot.engine.order_flow``: intents, the gate, the executor, facts), ``Protection``
(``bot.engine.protection``: stops, targets, trailing; exit requests; the exchange-side stop) and
the ``TradingStateController`` (``risk.trading_state``: ACTIVE / REDUCING / HALTED, the
breaker plug-ins, paused symbols; every change a stored ``TradingStateChanged`` fact). It
reaches the world only through the ports of ``bot.core.ports``.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence

import structlog

from bot.core.buffer import CandleBuffer
from bot.engine.settings import EngineSettings, EngineStats
from bot.core.events import (Candle, Fact, MarketEvent, OrderBook, OrderIntent, Signal, SignalExplained,
                             StrategyFailed, Trade)
from bot.core.orders import OrderClosed
from bot.core.feed_port import Feed
from bot.engine.order_flow import OrderFlow
from bot.engine.ledger import OrderLedger
from bot.core.ports import Clock, ExecutionPort, FactSink
from bot.engine.protection import ExitRequest, Protection
from bot.engine.recorder import Listener, Recorder
from bot.engine.reservations import Reservation
from bot.engine.strategy_guard import StrategyGuard
from risk.breakers import EMPTY_MEMORY, BreakerMemory, make_breakers
from risk.gate import RiskGate, RiskLimits, TradingState
from risk.market import MarketRules
from risk.portfolio import Portfolio, Position
from risk.sizing import RollingATR
from risk.trading_state import TradingStateController
from strategies.base import BarContext, Strategy

__all__ = ["Engine", "EngineSettings", "EngineStats", "Listener", "Reservation"]

log = structlog.get_logger("bot.engine.engine")
EvaluationTimer = Callable[[str, float], None]  # strategy name, seconds one ``evaluate`` took


class Engine:
    def __init__(
        self,
        *,
        strategies: list[Strategy],
        gate: RiskGate,
        executor: ExecutionPort,
        portfolio: Portfolio,
        store: FactSink,
        clock: Clock,
        settings: EngineSettings | None = None,
        markets: dict[str, MarketRules] | None = None,
    ) -> None:
        self.strategies = strategies
        self.executor = executor
        self.portfolio = portfolio
        self.store = store
        self.clock = clock
        self.markets = markets or {}
        for symbol, rules in self.markets.items():
            portfolio.set_lot_size(symbol, rules.amount_step or 0.0)
        settings = settings or EngineSettings()
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
        self._rolling_atr: dict[tuple[str, str], RollingATR] = {}
        # only a strategy that overrides ``explain`` is asked (the default answers ``{}``)
        self._explains = {s.name for s in strategies if type(s).explain is not Strategy.explain}
        self._recorder = Recorder(store)
        self.trading = TradingStateController(make_breakers(gate.limits), on_change=self._recorder.emit)
        self.ledger = OrderLedger()
        self.protection = Protection(portfolio, executor.protection)
        self.flow = OrderFlow(
            gate=gate, executor=executor, portfolio=portfolio, ledger=self.ledger, protection=self.protection,
            trading=self.trading, recorder=self._recorder, clock=clock, settings=settings,
            markets=self.markets, stats=self.stats, on_fill=self._check_breakers,
        )
        self._saved_breakers: BreakerMemory | None = None
        self._last_state_poll: int | None = None
        self._polls_state = settings.state_poll_interval_ms > 0  # operator halts (daemon)
        self._evaluation_timer: EvaluationTimer | None = None
        self.guard = StrategyGuard(settings.max_strategy_failures, self._failed)  # every call into strategy code

    # -- what the parts own, read here ------------------------------------------------------

    @property
    def gate(self) -> RiskGate:
        return self.flow.gate

    @property
    def settings(self) -> EngineSettings:
        return self.flow.settings

    @property
    def state(self) -> TradingState:
        return self.trading.state

    @property
    def state_reason(self) -> str:
        return self.trading.reason

    @property
    def paused(self) -> Mapping[str, str]:
        return self.trading.paused

    def reservations(self) -> dict[str, Reservation]:
        """What approved, unfilled entries hold, by intent id (a copy)."""
        return self.ledger.reservations()

    def committed_heat(self) -> float:
        """Heat of open positions plus what approved, unfilled entries may add."""
        return self.flow.committed_heat()

    # -- wiring -----------------------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` with every signal and fact (metrics, notifications)."""
        self._recorder.subscribe(listener)

    def time_evaluations(self, timer: EvaluationTimer | None) -> None:
        """Call ``timer(strategy name, seconds)`` after every ``Strategy.evaluate`` (metrics)."""
        self._evaluation_timer = timer

    async def run(self, feed: Feed) -> EngineStats:
        """Consume ``feed`` to its end (or until cancelled); state is flushed either way."""
        try:
            async for event in feed:
                await self.on_event(event)
            for strategy in self.strategies:  # what a prepared replay held back (backtests)
                for explained in strategy.deferred_explanations():
                    self._recorder.emit(explained)
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
        settings = self.flow.settings
        if settings.durable:
            await self._recorder.flush()
        elif self._recorder.since_flush >= settings.flush_every:
            await self._recorder.flush_behind()  # the replay goes on while the batch is written

    # -- candles ----------------------------------------------------------------

    async def on_candle(self, candle: Candle) -> None:
        key = (candle.symbol, candle.timeframe)
        buffer = self.buffers.get(key) or self._buffer(key)  # (an empty one is falsy: _buffer finds it)
        stats = self.stats
        if buffer.append(candle) is not None:
            stats.rejected += 1
            return
        stats.candles += 1
        if stats.first_ts is None:
            stats.first_ts = candle.ts
        stats.last_ts = candle.ts

        symbol = candle.symbol
        facts = await self.executor.on_market(candle)  # fills of orders resting until this bar
        if facts:
            await self.flow.apply(facts)
        portfolio = self.portfolio
        portfolio.mark(symbol, candle.close)
        held = portfolio.positions.get(symbol)
        close_ts = candle.close_ts
        if self.protection.stale or (held is not None and held.is_open):  # else nothing to protect
            await self._protect(self.protection.judge_bar(candle), symbol, candle.high, close_ts)
        rolling = self._rolling_atr.get(key)
        if rolling is None:  # first candle of this series here: start from what the buffer holds
            period = self.flow.settings.atr_period
            rolling = self._rolling_atr[key] = RollingATR(period)
            w = buffer.window(period + 1)
            atr = rolling.seed(w.high, w.low, w.close)
        else:
            atr = rolling.update(candle.high, candle.low, candle.close)
        if atr is not None:
            self.flow.note_atr(symbol, atr)

        self.clock.advance_to(close_ts)  # a simulated clock follows the candles; a live one does not
        guard, timer = self.guard, self._evaluation_timer
        for strategy in self._routes.get(key, ()):
            if len(buffer) < strategy.warmup or not guard.active(strategy):
                continue
            evaluate = strategy.evaluate if timer is None else self._timed(strategy, timer)
            signal = guard.call(strategy, "evaluate", symbol, candle.ts, evaluate,
                                self._context(strategy, candle, buffer))
            if signal is not None:  # a backfilled bar is history: it may exit, never enter
                await self.flow.on_signal(signal, candle.close, may_enter=not candle.backfilled)
                if strategy.name not in self._explains:
                    continue
                attributions = guard.call(strategy, "explain", symbol, candle.ts, strategy.explain, signal)
                if attributions:  # after the order left
                    self._recorder.emit(SignalExplained(signal.signal_id, signal.ts, attributions))
        snapshot = portfolio.snapshot(close_ts)
        self._check_breakers(close_ts, snapshot.equity)
        self._recorder.emit(snapshot)

    @staticmethod
    def _timed(strategy: Strategy, timer: EvaluationTimer) -> Callable[[BarContext], Signal | None]:
        def timed(ctx: BarContext) -> Signal | None:
            t0 = time.perf_counter()
            try:
                return strategy.evaluate(ctx)
            finally:
                timer(strategy.name, time.perf_counter() - t0)

        return timed

    async def _on_price(self, event: MarketEvent, symbol: str, price: float, ts: int) -> None:
        await self.flow.apply(await self.executor.on_market(event))
        self.portfolio.mark(symbol, price)
        await self._protect(self.protection.judge_price(symbol, price, ts), symbol, price, ts)

    async def _protect(self, request: ExitRequest | None, symbol: str, high: float, ts: int) -> None:
        """Send the exit protection asks for (unless one is on its way), else trail the stop."""
        if request is not None:
            if not self.ledger.exit_pending(symbol):
                await self.flow.exit(request)
            return
        changed = self.protection.trail(symbol, high, ts)
        if changed is not None:
            self._recorder.emit(changed)
        await self.flow.sync_stops()

    def _buffer(self, key: tuple[str, str]) -> CandleBuffer:
        buffer = self.buffers.get(key)
        if buffer is None:
            buffer = self.buffers[key] = CandleBuffer(*key, self.settings.buffer_capacity)
        return buffer

    def _context(self, strategy: Strategy, candle: Candle, buffer: CandleBuffer) -> BarContext:
        n = strategy.warmup
        held = self.portfolio.positions.get(candle.symbol)  # flat: ``Portfolio.position`` holds 0.0
        return BarContext(candle, buffer.window(n if n > 2 else 2), 0.0 if held is None else held.amount)

    def _failed(self, failed: StrategyFailed) -> None:
        self.stats.strategy_failures += 1
        self._recorder.emit(failed)

    # -- orders and facts from outside the feed -------------------------------------------------

    async def on_signal(self, signal: Signal, price: float, may_enter: bool = True) -> None:
        """Act on a strategy's signal at reference ``price`` (also for external signal sources);
        ``may_enter=False`` (a backfilled bar): exits only."""
        await self.flow.on_signal(signal, price, may_enter)

    async def apply(self, facts: list[Fact | OrderClosed]) -> None:
        """Apply facts an executor produced outside ``submit``/``on_market`` (reconciliation)."""
        await self.flow.apply(facts)

    async def cancel_orders(self, symbols: Sequence[str], *, keep_protective: bool, entries_only: bool = False,
                            reason: str = "canceled") -> int:
        """Cancel our resting orders on ``symbols`` (``ExecutionPort.cancel_all``) and release
        what was held for them; returns how many were cancelled."""
        n, facts = await self.executor.cancel_all(self.clock.now_ms(), symbols, keep_protective=keep_protective,
                                                  entries_only=entries_only, reason=reason)
        await self.flow.apply(facts)
        return n

    async def rearm_exchange_stops(self) -> None:
        """Give every open position its exchange-side stop (start-up, after reconciliation)."""
        self.protection.rearm()
        await self.flow.sync_stops()

    # -- trading state ----------------------------------------------------------------------

    def pause(self, symbol: str, reason: str | None) -> None:
        """Stop new entries on ``symbol`` (the gate's ``symbol_paused``), or lift it (``None``).
        Exits and stops on the symbol keep working."""
        self.trading.pause(symbol, reason)

    def set_state(self, state: TradingState, reason: str, force: bool = False) -> None:
        """Move to ``state`` (only escalates unless ``force``: an operator's resume)."""
        self.trading.set_state(state, reason, self.clock.now_ms(), force)

    def resume_blockers(self) -> list[str]:
        """Why a resume would not hold now: a breach the breakers still see."""
        return self.trading.resume_blockers(self.clock.now_ms(), self.portfolio.equity())

    def _check_breakers(self, ts: int, equity: float | None = None) -> None:
        self.trading.on_equity(ts, self.portfolio.equity() if equity is None else equity)
        if self.flow.settings.breakers_persisted:
            memory = self.trading.memory()
            if memory != self._saved_breakers:
                self._saved_breakers = memory
                self.store.record_breakers(memory, ts)

    async def restore_breakers(self, now_ms: int | None = None,
                               memory: BreakerMemory | None = None) -> BreakerMemory | None:
        """Take back the persisted day-start equity and peak (restart), then judge equity at
        ``now_ms``. ``memory``: one read earlier (before reconciliation touched the store)."""
        memory = memory if memory is not None else await self.store.load_breakers()
        self.trading.recall(memory if memory is not None else EMPTY_MEMORY)
        self._saved_breakers = None  # re-persist: what reconciliation queued is superseded
        if memory is not None:
            log.info("breakers_restored", day=memory.day, day_start_equity=round(memory.day_start_equity, 2),
                     peak_equity=round(memory.peak_equity, 2))
        if now_ms is not None:
            self._check_breakers(now_ms)
        return memory

    async def poll_trading_state(self, force: bool = False) -> None:
        """Honour a state an operator stored (``neuralbot halt``) while running; cheap when not due."""
        interval = self.settings.state_poll_interval_ms
        if not interval and not force:
            return
        now = self.clock.now_ms()
        if not force and self._last_state_poll is not None and now - self._last_state_poll < interval:
            return
        self._last_state_poll = now
        stored = await self.store.load_trading_state()
        if stored is not None:
            self.trading.apply_stored(stored[0], f"stored trading state: {stored[1]}", now)

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
                    self.guard.call(strategy, "warm", candle.symbol, candle.ts, strategy.warm,
                                    self._context(strategy, candle, buffer))
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
        self.ledger.restore(decided, entered_signals, open_intents)

    def reconfigure(self, limits: RiskLimits, settings: EngineSettings) -> None:
        """A reloaded configuration: a new risk gate and breakers (which keep their memory:
        day-start equity and peak) and new settings; ATR trackers restart from the buffers
        when their period changed."""
        if settings.atr_period != self.settings.atr_period:
            self._rolling_atr.clear()
        self.flow.reconfigure(RiskGate(limits, self.gate.checks), settings)
        self.trading.replace_breakers(make_breakers(limits))

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
        if not pos.is_open or self.ledger.exit_pending(symbol):
            return False
        ts = self.clock.now_ms()
        price = self.portfolio.last_price.get(symbol, pos.avg_price)
        await self.flow.exit(ExitRequest(symbol, pos.amount, "flatten", price, ts, f"{reason}-{ts}"))
        return True
