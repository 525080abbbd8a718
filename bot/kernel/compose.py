"""``neuralbot backtest``: a finite replay through the Engine the kernel builds, and its summary.

The Engine, its executor and clock come from :class:`bot.kernel.kernel.Kernel` (mode ``backtest``),
as every other mode's do; ``summarize`` also reports a daemon's run.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from bot.core.clock import SimClock
from bot.config.settings import Settings, date_to_ms
from bot.engine.engine import Engine, EngineStats
from bot.evaluation.performance import (
    annual_return,
    bar_returns,
    max_drawdown,
    periods_per_year,
    round_trips,
    sharpe,
    win_rate,
)
from bot.core.events import Candle, timeframe_ms
from bot.core.feed_port import Feed
from bot.marketdata.source import CandleSource
from bot.marketdata.candle_csv import arrays_to_candles
from bot.feeds.replay import ReplayFeed
from bot.kernel.kernel import Kernel
from bot.kernel.settings import feed_series
from bot.kernel.in_sample import check_in_sample
from bot.store.store import Store
from strategies.base import Strategy

log = structlog.get_logger(__name__)


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
    :class:`bot.kernel.in_sample.InSampleError` unless ``allow_in_sample``.
    """
    run_id = run_id or uuid.uuid4().hex[:12]
    portfolio_name = f"backtest-{run_id}"
    since, until = date_to_ms(start or settings.backtest.start), date_to_ms(end or settings.backtest.end)
    warning = check_in_sample(settings, since, until, allow_in_sample, symbols, timeframe)
    if warning:
        log.warning("backtest_in_sample", detail=warning)
    kernel = Kernel(settings, "backtest", feed=feed)
    strategies = kernel.strategies(symbols, timeframe)
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
        engine = kernel.simulated_engine(strategies, store, clock)
        stats = await engine.run(feed)
        summary = await summarize(engine, store, finest, settings.backtest.initial_equity)
    finally:
        await store.close()
    summary["portfolio"] = portfolio_name
    summary["store"] = str(Path(settings.store.path))
    if warning:
        summary["in_sample"] = warning
    return BacktestResult(portfolio_name, stats, summary)
