"""What the settings say each part of the kernel is: strategies, their series, the Engine's
settings and risk limits, the live feed's tunables (pure reads of :class:`bot.config.settings.Settings`,
used by :mod:`bot.kernel.kernel` and by whatever needs the same answer without building anything).
"""

from __future__ import annotations

from typing import Any

from bot.config.settings import Settings, StrategyConfig, round_trip_cost
from bot.engine.settings import EngineSettings
from bot.core.events import timeframe_ms
from bot.feeds.live_settings import LiveFeedSettings
from risk.gate import RiskLimits
from risk.stops import StopRules
from strategies.base import Strategy
from strategies.catalog import build_strategy

Series = tuple[str, str]


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


def feed_series(strategies: list[Strategy]) -> list[Series]:
    """Every (symbol, timeframe) some strategy listens to, in a stable order."""
    return sorted({(sym, st.timeframe) for st in strategies for sym in st.symbols})


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
        breakers=tuple(r.breakers),
    )
