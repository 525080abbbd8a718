"""Composition root: the one place where configuration becomes wired components.

Backtest, paper and live all call ``build_engine``; they differ only in the Feed,
the ExecutionPort and the Clock handed to it.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from bot.clock import Clock, SimClock
from bot.config import Settings, StrategyConfig, date_to_ms, round_trip_cost
from bot.engine import Engine, EngineSettings, EngineStats
from bot.evaluation.metrics import (
    annual_return,
    bar_returns,
    max_drawdown,
    periods_per_year,
    round_trips,
    sharpe,
    win_rate,
)
from bot.events import Candle, timeframe_ms
from bot.execution.base import ExecutionPort
from bot.execution.simulated import SimulatedExecutor
from bot.feeds.base import Feed
from bot.feeds.live_settings import LiveFeedSettings
from bot.candle_source import CandleSource
from bot.data import arrays_to_candles
from bot.feeds.replay import ReplayFeed
from bot.store import Store
from risk.gate import RiskGate, RiskLimits
from risk.portfolio import Portfolio
from risk.stops import StopRules
from strategies.base import Strategy
from strategies.catalog import build_strategy

log = structlog.get_logger(__name__)


def strategy_params(settings: Settings, cfg: StrategyConfig) -> dict[str, Any]:
    """``cfg.params``; a ``neural`` strategy's ``decision`` table gets the configured round-trip
    cost (fees, slippage, spread) unless it sets ``cost`` itself."""
    params = dict(cfg.params)
    decision = params.get("decision")
    if cfg.kind == "neural" and isinstance(decision, dict) and "cost" not in decision:
        params["decision"] = {**decision, "cost": round_trip_cost(settings)}
    return params


def build_strategies(
    settings: Settings, symbols: list[str] | None = None, timeframe: str | None = None
) -> list[Strategy]:
    out = []
    for i, cfg in enumerate(settings.strategies):
        if not cfg.enabled:
            continue
        out.append(
            build_strategy(
                cfg.kind,
                cfg.name,
                tuple(symbols or cfg.symbols or settings.backtest.symbols),
                timeframe or cfg.timeframe or settings.backtest.timeframe,
                strategy_params(settings, cfg),
                where=f"strategies[{i}]",
            )
        )
    return out


def live_feed_settings(settings: Settings, since_ms: int | None = None) -> LiveFeedSettings:
    """The ccxt.pro feed's tunables from ``[feed]`` and the strategies (symbols, timeframes, and
    the books / trades a strategy reads even where ``[feed]`` leaves them off)."""
    f = settings.feed
    strategies = build_strategies(settings)
    series = feed_series(strategies)
    wanted = frozenset().union(*(st.market_streams() for st in strategies))  # e.g. the ``full`` features
    return LiveFeedSettings(
        exchange=settings.exchange.name,
        symbols=tuple(sorted({sym for sym, _ in series})),
        timeframes=tuple(sorted({tf for _, tf in series}, key=timeframe_ms)),
        order_book=f.order_book or "order_book" in wanted,
        order_book_depth=f.order_book_depth,
        trades=f.trades or "trades" in wanted,
        since_ms=since_ms,
        backfill_limit=f.backfill_limit,
        backfill_grace_bars=f.backfill_grace_bars,
        reconnect_initial_s=f.reconnect_initial_s,
        reconnect_max_s=f.reconnect_max_s,
        reconnect_jitter=f.reconnect_jitter,
        stale_multiple=f.stale_multiple,
        max_clock_skew_ms=f.max_clock_skew_ms,
    )


def engine_settings(settings: Settings, durable: bool = False) -> EngineSettings:
    r = settings.risk
    return EngineSettings(
        exchange=settings.exchange.name,
        fee_rate=settings.exchange.fee_rate,
        stops=StopRules(r.stop_loss_pct, r.take_profit_pct, r.trailing_stop_pct, r.atr_multiple),
        risk_per_trade_pct=r.risk_per_trade_pct,
        slippage_margin_bps=r.slippage_margin_bps,
        atr_period=r.atr_period,
        max_strategy_failures=r.max_strategy_failures,
        durable=durable,
    )


def risk_limits(settings: Settings) -> RiskLimits:
    r = settings.risk
    return RiskLimits(
        max_position_pct=r.max_position_pct,
        max_symbol_exposure_pct=r.max_symbol_exposure_pct,
        max_open_positions=r.max_open_positions,
        max_heat_pct=r.max_heat_pct,
        min_strength=r.min_strength,
        max_orders_per_minute=r.max_orders_per_minute,
        daily_loss_limit_pct=r.daily_loss_limit_pct,
        max_drawdown_pct=r.max_drawdown_pct,
    )


def build_engine(
    settings: Settings,
    *,
    strategies: list[Strategy],
    store: Store,
    clock: Clock,
    executor: ExecutionPort | None = None,
    initial_equity: float | None = None,
    engine: EngineSettings | None = None,
    limits: RiskLimits | None = None,
) -> Engine:
    """The Engine every mode runs; ``engine`` and ``limits`` override what the config derives."""
    portfolio = Portfolio(initial_equity or settings.backtest.initial_equity)
    if executor is None:
        executor = SimulatedExecutor(
            fee_rate=settings.exchange.fee_rate,
            slippage_bps=settings.backtest.slippage_bps,
            cash=lambda: portfolio.cash,
        )
    return Engine(
        strategies=strategies,
        gate=RiskGate(limits or risk_limits(settings)),
        executor=executor,
        portfolio=portfolio,
        store=store,
        clock=clock,
        settings=engine or engine_settings(settings),
    )


@dataclass(frozen=True)
class BacktestResult:
    portfolio: str
    stats: EngineStats
    summary: dict[str, Any]


async def summarize(engine: Engine, store: Store, timeframe: str, initial: float) -> dict[str, Any]:
    """Headline figures of a finished run, computed from what the store recorded."""
    equity = np.array([initial, *await store.column("equity", "equity")])
    trips = round_trips(await store.fetch("fills"))
    stats = engine.stats
    span = (stats.last_ts or 0) - (stats.first_ts or 0) + timeframe_ms(timeframe)
    final = float(equity[-1])
    return {
        "candles": stats.candles,
        "rejected_candles": stats.rejected,
        "signals": stats.signals,
        "orders": stats.orders,
        "denied": stats.denied,
        "fills": stats.fills,
        "trades": len(trips),
        "initial_equity": initial,
        "final_equity": round(final, 2),
        "total_return": round(final / initial - 1.0, 6),
        "annual_return": round(annual_return(equity, span), 6),
        "sharpe": round(sharpe(bar_returns(equity), periods_per_year(timeframe_ms(timeframe))), 4),
        "max_drawdown": round(max_drawdown(equity), 6),
        "win_rate": round(win_rate(trips), 4),
        "fees": round(engine.portfolio.fees_paid, 2),
        "first_ts": stats.first_ts,
        "last_ts": stats.last_ts,
        "denials_by_check": dict(stats.denials_by_check),
    }


def prepare_replay(strategies: list[Strategy], feed: ReplayFeed) -> None:
    """Show each strategy the candles of a finite replay before it runs (its fast path:
    the neural ensemble batches predictions and explanations; signals stay bar-by-bar's)."""
    series: dict[tuple[str, str], list[Candle]] = defaultdict(list)
    for candle in feed.candles():
        series[(candle.symbol, candle.timeframe)].append(candle)
    for strategy in strategies:
        for symbol in strategy.symbols:
            strategy.prepare_replay(symbol, series.get((symbol, strategy.timeframe), []))


def feed_series(strategies: list[Strategy]) -> list[tuple[str, str]]:
    """Every (symbol, timeframe) some strategy listens to, in a stable order."""
    return sorted({(sym, st.timeframe) for st in strategies for sym in st.symbols})


async def run_backtest(
    settings: Settings,
    *,
    symbols: list[str] | None = None,
    timeframe: str | None = None,
    start: Any = None,
    end: Any = None,
    run_id: str | None = None,
    feed: Feed | None = None,
    allow_in_sample: bool = False,
) -> BacktestResult:
    """Replay candles through the Engine with simulated fills; every fact goes to SQLite.

    ``symbols``/``timeframe`` override those of every strategy (the CLI's --symbol and
    --timeframe); otherwise each strategy keeps its own and the replay carries them all.
    A span overlapping a model strategy's training span raises
    :class:`bot.in_sample.InSampleError` unless ``allow_in_sample``.
    """
    from bot.in_sample import check_in_sample

    run_id = run_id or uuid.uuid4().hex[:12]
    portfolio_name = f"backtest-{run_id}"
    since, until = date_to_ms(start or settings.backtest.start), date_to_ms(end or settings.backtest.end)
    warning = check_in_sample(settings, since, until, allow_in_sample, symbols, timeframe)
    if warning:
        log.warning("backtest_in_sample", detail=warning)
    strategies = build_strategies(settings, symbols, timeframe)
    series = feed_series(strategies)
    if feed is None:
        source = CandleSource.from_settings(settings)
        feed = ReplayFeed(
            arrays_to_candles(source.load(sym, tf, since, until), settings.exchange.name, sym, tf)
            for sym, tf in series
        )
    if isinstance(feed, ReplayFeed):
        prepare_replay(strategies, feed)
    finest = min((tf for _, tf in series), key=timeframe_ms, default=settings.backtest.timeframe)
    store = await Store.open(settings.store.path, portfolio=portfolio_name)
    try:
        clock = SimClock()
        await store.start_run(run_id, "backtest", 0, settings.redacted())
        engine = build_engine(settings, strategies=strategies, store=store, clock=clock)
        stats = await engine.run(feed)
        summary = await summarize(engine, store, finest, settings.backtest.initial_equity)
    finally:
        await store.close()
    summary["portfolio"] = portfolio_name
    summary["store"] = str(Path(settings.store.path))
    if warning:
        summary["in_sample"] = warning
    return BacktestResult(portfolio_name, stats, summary)
