"""Engine settings and statistics, and the trading-state concern of the Engine.

The trading state (``active`` / ``reducing`` / ``halted``) moves by three roads:
the circuit breakers (daily loss, drawdown), an operator (``neuralbot halt`` writes
it to SQLite; a running engine re-reads it every ``state_poll_ms`` of clock time)
and a restart (the persisted state and the breakers' day-start equity and equity
peak are restored, so a restart cannot reset a drawdown).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from bot.events import Fact, Signal
from risk.breakers import BreakerMemory, Breakers, escalate
from risk.state import TradingState
from risk.stops import StopRules

if TYPE_CHECKING:
    from bot.clock import Clock
    from bot.store import Store
    from risk.portfolio import Portfolio

log = structlog.get_logger("bot.engine")

Listener = Callable[[Fact | Signal], None]
MINUTE_MS = 60_000
DURABLE_STATE_POLL_MS = 5_000


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
    durable: bool = False  # flush every executor fact at once (exchange modes)
    # order_filled / order_denied at INFO (else DEBUG); None: INFO only when durable
    log_orders: bool | None = None
    # re-read the stored trading state (operator halt) every this many clock ms;
    # None: every 5 s when durable, never otherwise; 0: never
    state_poll_ms: int | None = None
    # persist the breakers' day-start equity and peak; None: when durable
    persist_breakers: bool | None = None
    max_strategy_failures: int = 3  # failures in a row that disable a strategy (bot.strategy_guard)

    @property
    def orders_at_info(self) -> bool:
        return self.durable if self.log_orders is None else self.log_orders

    @property
    def state_poll_interval_ms(self) -> int:
        if self.state_poll_ms is None:
            return DURABLE_STATE_POLL_MS if self.durable else 0
        return max(0, self.state_poll_ms)

    @property
    def breakers_persisted(self) -> bool:
        return self.durable if self.persist_breakers is None else self.persist_breakers


@dataclass
class EngineStats:
    candles: int = 0
    rejected: int = 0
    signals: int = 0
    intents: int = 0
    denied: int = 0
    orders: int = 0
    fills: int = 0
    strategy_failures: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    denials_by_check: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class TradingStateMixin:
    """Trading state, circuit breakers and the operator's stored state (part of ``Engine``)."""

    state: TradingState
    state_reason: str
    paused: dict[str, str]
    breakers: Breakers
    portfolio: Portfolio
    store: Store
    clock: Clock
    settings: EngineSettings
    _saved_breakers: BreakerMemory | None
    _last_state_poll: int | None

    def pause(self, symbol: str, reason: str | None) -> None:
        """Stop new entries on ``symbol`` (the gate's ``symbol_paused``), or lift it (``None``).
        Exits and stops on the symbol keep working."""
        if reason is None:
            self.paused.pop(symbol, None)
        else:
            self.paused[symbol] = reason
        log.warning("symbol_paused" if reason is not None else "symbol_unpaused", symbol=symbol, reason=reason)

    def set_state(self, state: TradingState, reason: str, force: bool = False) -> None:
        """Move to ``state`` (only escalates unless ``force``: an operator's resume)."""
        new = state if force else escalate(self.state, state)
        if new is self.state:
            return
        log.warning("trading_state_changed", old=self.state.value, new=new.value, reason=reason)
        self.state, self.state_reason = new, reason

    def _check_breakers(self, ts: int, equity: float | None = None) -> None:
        if self.state is TradingState.REDUCING and self.breakers.daily_reset_due(ts):
            self.breakers.reducing_day = None
            self.set_state(TradingState.ACTIVE, "new UTC day: daily loss limit reset", force=True)
        due = self.breakers.update(ts, self.portfolio.equity() if equity is None else equity)
        if due is not None:
            self.set_state(*due)
        if self.settings.breakers_persisted:
            memory = self.breakers.memory()
            if memory != self._saved_breakers:
                self._saved_breakers = memory
                self.store.record_breakers(memory, ts)

    async def restore_breakers(self, now_ms: int | None = None,
                               memory: BreakerMemory | None = None) -> BreakerMemory | None:
        """Take back the persisted day-start equity and peak (restart), then judge equity at
        ``now_ms``. ``memory``: one read earlier (before reconciliation touched the store)."""
        memory = memory if memory is not None else await self.store.load_breakers()
        if memory is None:  # nothing persisted: start afresh from the equity at ``now_ms``
            self.breakers.restore(BreakerMemory(None, 0.0, 0.0, None))
            self._saved_breakers = None
            if now_ms is not None:
                self._check_breakers(now_ms)
            return None
        self.breakers.restore(memory)
        self._saved_breakers = None  # re-persist: what reconciliation queued is superseded
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
        if stored is None:
            return
        try:
            wanted = TradingState(stored[0])
        except ValueError:
            log.error("stored_trading_state_unknown", state=stored[0])
            return
        if escalate(self.state, wanted) is not self.state:
            self.set_state(wanted, f"stored trading state: {stored[1]}")
