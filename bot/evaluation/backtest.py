"""Evaluation backtests: one strategy per Engine, over the same candles and the same costs.

Nothing here is a second trading loop. :func:`run_strategy` builds the real
:class:`bot.engine.engine.Engine` (from :class:`bot.kernel.kernel.Kernel`: risk gate,
simulated executor, portfolio, simulated clock) and drives it with a
:class:`bot.feeds.replay.ReplayFeed`. The only difference from
``neuralbot backtest`` is the fact sink: :class:`MemoryStore` keeps the facts in
memory (columnar equity, fills, signals) instead of SQLite, because an evaluation
runs dozens of backtests and only needs the numbers back.

* :class:`ProbabilityStrategy` trades precomputed P(up) forecasts (the fast path:
  a model predicts every window of a history in one batch, the Engine replays them);
* :class:`StartGate` lets a strategy warm up on earlier bars without trading them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from bot.core.clock import SimClock
from bot.config.settings import Settings
from bot.engine.engine import EngineStats
from bot.core.events import (
    Candle,
    Direction,
    EquitySnapshot,
    Fact,
    OrderDenied,
    OrderFilled,
    OrderIntent,
    Signal,
    TradingStateChanged,
)
from bot.feeds.replay import ReplayFeed
from bot.kernel.kernel import Kernel
from risk.breakers import BreakerMemory
from strategies.base import BarContext, Strategy


class MemoryStore:
    """The Engine's fact sink (``bot.core.ports.FactSink``) in memory, as :class:`bot.store.store.Store` is on SQLite."""

    def __init__(self, portfolio: str = "memory") -> None:
        self.portfolio = portfolio
        self.eq_ts: list[int] = []
        self.eq_cash: list[float] = []
        self.eq_equity: list[float] = []
        self.eq_exposure: list[float] = []
        self.fills: list[dict[str, Any]] = []
        self.signals: list[Signal] = []
        self.denials: list[OrderDenied] = []
        self.state_changes: list[TradingStateChanged] = []
        self.decisions = 0
        self.breakers: BreakerMemory | None = None

    def record(self, item: Fact | Signal) -> None:
        if isinstance(item, EquitySnapshot):
            if self.eq_ts and self.eq_ts[-1] == item.ts:  # several symbols closing together
                self.eq_cash[-1], self.eq_equity[-1], self.eq_exposure[-1] = (
                    item.cash, item.equity, item.exposure)
                return
            self.eq_ts.append(item.ts)
            self.eq_cash.append(item.cash)
            self.eq_equity.append(item.equity)
            self.eq_exposure.append(item.exposure)
        elif isinstance(item, OrderFilled):
            self.fills.append({
                "symbol": item.symbol, "side": item.side.value, "amount": item.amount,
                "price": item.price, "fee": item.fee, "ts": item.ts, "order_id": item.order_id,
            })
        elif isinstance(item, Signal):
            self.signals.append(item)
        elif isinstance(item, OrderDenied):
            self.denials.append(item)
        elif isinstance(item, TradingStateChanged):
            self.state_changes.append(item)

    def record_decision(self, intent: OrderIntent, denial: OrderDenied | None) -> None:
        self.decisions += 1

    async def record_now(self, item: Fact | Signal) -> None:
        self.record(item)

    async def flush(self) -> int:
        return 0

    async def flush_behind(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def set_order_status(self, order_id: str, status: str, ts: int) -> None:
        return None

    def record_breakers(self, memory: BreakerMemory, ts: int) -> None:
        self.breakers = memory

    async def load_breakers(self) -> BreakerMemory | None:
        return self.breakers

    async def load_trading_state(self) -> tuple[str, str] | None:
        return None  # no operator stores a state for an evaluation


@dataclass
class RunRecord:
    """What one strategy's backtest produced (everything metrics and plots need)."""

    strategy: str
    symbol: str
    timeframe: str
    initial_equity: float
    ts: np.ndarray  # equity snapshot times (bar close, ms)
    equity: np.ndarray
    exposure: np.ndarray
    fills: list[dict[str, Any]]
    signals: list[Signal]
    stats: EngineStats
    fees: float
    predictions: dict[str, np.ndarray] = field(default_factory=dict)  # ts, p, y (forecasters)


class ProbabilityStrategy(Strategy):
    """Trade a precomputed forecast of P(up) keyed by bar open time.

    Long when ``p >= long_above``, flat when ``p < exit_below`` (hysteresis when
    they differ), no opinion on bars without a forecast. Strength is
    ``100 * max(p, 1 - p)``: how sure the forecast is of its direction.
    """

    def __init__(
        self,
        name: str,
        symbols: tuple[str, ...],
        timeframe: str,
        probabilities: Mapping[int, float],
        long_above: float = 0.5,
        exit_below: float = 0.5,
        size_pct: float = 100.0,
    ) -> None:
        if exit_below > long_above:
            raise ValueError("exit_below must not exceed long_above")
        super().__init__(name, symbols, timeframe)
        self.probabilities = probabilities
        self.long_above, self.exit_below = long_above, exit_below
        self.default_size_pct = size_pct
        self.warmup = 1

    @classmethod
    def from_arrays(cls, name: str, symbol: str, timeframe: str, ts: np.ndarray, p: np.ndarray,
                    **kwargs: Any) -> ProbabilityStrategy:
        probs = {int(t): float(v) for t, v in zip(ts.tolist(), p.tolist(), strict=True)
                 if np.isfinite(v)}
        return cls(name, (symbol,), timeframe, probs, **kwargs)

    def evaluate(self, ctx: BarContext) -> Signal | None:
        p = self.probabilities.get(ctx.candle.ts)
        if p is None:
            return None
        strength = round(100.0 * max(p, 1.0 - p), 4)
        if p >= self.long_above:
            return self.signal(ctx, Direction.LONG, strength, reason=f"p_up={p:.4f}", probability=p)
        if p < self.exit_below:
            return self.signal(ctx, Direction.FLAT, strength, reason=f"p_up={p:.4f}", probability=p)
        return None


class StartGate(Strategy):
    """Run ``inner`` on every bar (its state stays causal) but drop signals before ``start_ts``.

    With ``size_pct`` every long signal that recommends an entry (size > 0) recommends
    that size instead of the strategy's own (strategies compared side by side are
    sized alike; a strategy's decision not to act is kept).
    """

    def __init__(self, inner: Strategy, start_ts: int | None = None, size_pct: float | None = None) -> None:
        super().__init__(inner.name, inner.symbols, inner.timeframe)
        self.inner = inner
        self.start_ts = start_ts
        self.size_pct = size_pct
        self.warmup = inner.warmup
        self.default_size_pct = inner.default_size_pct if size_pct is None else size_pct

    def evaluate(self, ctx: BarContext) -> Signal | None:
        signal = self.inner.evaluate(ctx)
        if signal is None or (self.start_ts is not None and ctx.candle.ts < self.start_ts):
            return None
        if self.size_pct is not None and signal.direction is Direction.LONG and signal.size_pct > 0:
            signal = replace(signal, size_pct=self.size_pct)
        return signal


#: Risk limits for measuring signals rather than the risk overlay: full-size,
#: long/flat positions, no strength floor, no circuit breakers, a stop far away.
SIGNAL_RISK: dict[str, Any] = {
    "max_position_pct": 100.0, "max_symbol_exposure_pct": 100.0, "max_heat_pct": 100.0,
    "min_strength": 0.0, "max_orders_per_minute": None, "daily_loss_limit_pct": None,
    "max_drawdown_pct": None,
}
SIGNAL_STOP_LOSS_PCT = 99.0


def with_costs(
    settings: Settings, spread_bps: float = 0.0, fee_rate: float | None = None, signal_risk: bool = False
) -> Settings:
    """A settings copy whose simulated slippage also pays half the quoted spread per fill.

    ``signal_risk`` also sets the risk limits to :data:`SIGNAL_RISK` and the stop loss to
    :data:`SIGNAL_STOP_LOSS_PCT` with no take-profit or trailing stop.
    """
    bt = settings.backtest.model_copy(
        update={"slippage_bps": settings.backtest.slippage_bps + spread_bps / 2.0})
    update: dict[str, Any] = {"backtest": bt}
    if signal_risk:
        wanted: dict[str, Any] = {
            **SIGNAL_RISK, "stop_loss_pct": SIGNAL_STOP_LOSS_PCT, "take_profit_pct": None,
            "trailing_stop_pct": None, "risk_per_trade_pct": None,
        }
        known = type(settings.risk).model_fields
        update["risk"] = settings.risk.model_copy(update={k: v for k, v in wanted.items() if k in known})
    if fee_rate is not None:
        update["exchange"] = settings.exchange.model_copy(update={"fee_rate": fee_rate})
    return settings.model_copy(update=update)


async def run_strategy(
    settings: Settings,
    strategy: Strategy,
    candles: Sequence[Candle],
    *,
    initial_equity: float | None = None,
    start_ts: int | None = None,
    size_pct: float | None = None,
    limits: Mapping[str, Any] | None = None,
) -> RunRecord:
    """Backtest ``strategy`` alone through the Engine over ``candles``.

    With ``start_ts`` the strategy sees earlier candles (warm-up) but its signals
    count only from the bar opening at ``start_ts``; the returned equity curve
    starts there too. ``limits`` overrides fields of the configured
    :class:`risk.gate.RiskLimits` (unknown names are ignored), e.g. :data:`SIGNAL_RISK`.
    """
    kernel = Kernel(settings, "evaluation")
    initial = initial_equity or settings.backtest.initial_equity
    store = MemoryStore(portfolio=f"eval-{strategy.name}")
    wrapped: Strategy = strategy
    if start_ts is not None or size_pct is not None:
        wrapped = StartGate(strategy, start_ts, size_pct)
    risk = None
    if limits:
        base = kernel.risk_limits()
        known = {f.name for f in fields(base)}
        risk = replace(base, **{k: v for k, v in limits.items() if k in known})
    engine = kernel.simulated_engine([wrapped], store, SimClock(), initial_equity=initial, limits=risk)
    stats = await engine.run(ReplayFeed([candles]))
    ts = np.asarray(store.eq_ts, dtype=np.int64)
    equity = np.asarray(store.eq_equity, dtype=np.float64)
    exposure = np.asarray(store.eq_exposure, dtype=np.float64)
    if start_ts is not None:
        keep = ts > start_ts  # snapshots at bar close; the bar opening at start_ts closes after it
        ts, equity, exposure = ts[keep], equity[keep], exposure[keep]
    symbol = strategy.symbols[0] if strategy.symbols else ""
    return RunRecord(
        strategy=strategy.name, symbol=symbol, timeframe=strategy.timeframe,
        initial_equity=initial, ts=ts, equity=equity, exposure=exposure, fills=store.fills,
        signals=store.signals, stats=stats, fees=engine.portfolio.fees_paid,
    )
