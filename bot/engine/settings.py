"""The Engine's settings and statistics."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from risk.stops import StopRules

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
    max_strategy_failures: int = 3  # failures in a row that disable a strategy (bot.engine.strategy_guard)

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
