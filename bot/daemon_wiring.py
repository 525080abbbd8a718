"""How the daemon's configuration becomes a restored Engine and a Feed (split from ``bot.daemon``).

Chosen only by configuration, always through the same Engine:

===============  =========  ==============================================================
feed.source      mode       executor
===============  =========  ==============================================================
replay           paper      simulated fills at the next candle (``SimulatedExecutor``)
exchange         paper      ``PaperBookExecutor``: walks the books the feed streams
                            (``feed.order_book``), else fills against the next candle
exchange         sandbox,   ``build_exchange_engine``: real orders through ccxt; positions
                 live       and stops are re-armed and the exchange reconciled before
                            anything trades
===============  =========  ==============================================================

Symbols and timeframes come from the strategies (``feed_series``). Before the feed
starts, the Engine and every strategy are warmed on the history (``bot.warmup``). The
exchange feed is a ccxt.pro ``LiveFeed``; it backfills over REST from the last warmed candle.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from bot.app import (
    build_engine,
    engine_settings,
    feed_series,
    live_feed_settings,
    risk_limits,
)
from bot.clock import Clock, LiveClock, SimClock
from bot.config import Settings, date_to_ms
from bot.data import candle_file, load_candles_csv
from bot.engine import Engine
from bot.engine_settings import DURABLE_STATE_POLL_MS, EngineSettings
from bot.events import timeframe_ms
from bot.feeds.base import Feed
from bot.feeds.replay import ReplayFeed
from bot.store import Store
from bot.warmup import warm_up
from risk.portfolio import Position
from strategies.base import Strategy

log = structlog.get_logger("bot.daemon")

Series = tuple[str, str]


@dataclass(slots=True)
class Wiring:
    engine: Engine
    feed: Feed
    clock: Clock  # the engine's: wall clock on the exchange, else market time (``SimClock``)
    series: list[Series]
    executor: str  # "simulated" | "paper_book" | "exchange"
    resume: dict[str, int | None]
    rest_client: Any = None  # the exchange executor's ccxt client (closed at shutdown)
    reconcile: dict[str, Any] | None = None

    @property
    def symbols(self) -> list[str]:
        return sorted({sym for sym, _ in self.series})

    @property
    def timeframe(self) -> str:
        """The finest timeframe traded (summaries, staleness)."""
        return min((tf for _, tf in self.series), key=timeframe_ms)


def series_key(series: list[Series], sym: str, tf: str) -> str:
    """``BTC/USDT`` when the symbol trades on one timeframe, else ``BTC/USDT@4h``."""
    return sym if sum(1 for s, _ in series if s == sym) == 1 else f"{sym}@{tf}"


async def wire(settings: Settings, store: Store, strategies: list[Strategy]) -> Wiring:
    """Build, restore and (exchange modes) reconcile the Engine; then the Feed that drives it."""
    series = feed_series(strategies)
    if not series:
        raise ValueError("no enabled strategy: nothing to trade")
    source, mode = settings.feed.source, settings.mode
    symbols = sorted({sym for sym, _ in series})
    rest_client = None
    report: dict[str, Any] | None = None
    if mode in ("sandbox", "live"):
        if source != "exchange":
            raise ValueError(f"mode {mode!r} trades on the exchange: set feed.source = 'exchange'")
        from bot.execution.wiring import build_exchange_engine, make_ccxt_client

        clock: Clock = LiveClock()
        rest_client = make_ccxt_client(settings)
        try:
            built = await build_exchange_engine(
                client=rest_client, store=store, clock=clock, strategies=strategies, symbols=symbols,
                limits=risk_limits(settings), settings=engine_settings(settings, durable=True),
                exchange_stops=settings.exchange.exchange_stops, stake=settings.exchange.stake)
        except BaseException:
            await rest_client.close()
            raise
        engine, kind = built.engine, "exchange"
        report = {"recovered_fills": built.report.recovered_fills,
                  "closed_orders": built.report.closed_orders, "mismatches": list(built.report.mismatches)}
    else:
        # paper fills are judged in market time: the clock follows the exchange's timestamps
        clock = SimClock()
        held: list[Engine] = []  # the paper book sizes market buys to the cash the portfolio holds
        executor = paper_book_executor(settings, lambda: held[0].portfolio.cash) \
            if source == "exchange" else None
        kind = "simulated" if executor is None else "paper_book"
        # a daemon: log every order, honour an operator halt, keep the breakers across restarts
        daemon_settings = dataclasses.replace(engine_settings(settings), log_orders=True, persist_breakers=True,
                                              state_poll_ms=DURABLE_STATE_POLL_MS)
        engine = build_engine(settings, strategies=strategies, store=store, clock=clock, executor=executor,
                              engine=daemon_settings)
        held.append(engine)
        await restore_paper(engine, store, settings)
    await engine.restore_breakers()
    for symbol, reason in (await store.load_pauses()).items():  # an operator's pause outlives a restart
        engine.pause(symbol, reason)
    resume = await warm_up(engine, store, settings, series, rest_client)
    feed = replay_feed(settings, series, resume) if source == "replay" else exchange_feed(
        settings, series, resume, LiveClock())
    log.info("daemon_resumed", cash=round(engine.portfolio.cash, 2), executor=kind,
             resume={series_key(series, s, tf): resume[f"{s}@{tf}"] for s, tf in series},
             positions=[p.symbol for p in engine.portfolio.open_positions()],
             trading_state=engine.state.value)
    return Wiring(engine, feed, clock, series, kind, resume, rest_client, report)


# what a reload may change in the Engine's settings; the rest was decided by the wiring at
# start (durability, operator-halt polling, breaker persistence, order logging, the fee the
# exchange reported, the executor's fees) and lasts until a restart
RELOADABLE_ENGINE_SETTINGS = ("stops", "risk_per_trade_pct", "slippage_margin_bps", "atr_period")


def reloaded_engine_settings(running: EngineSettings, new: Settings) -> EngineSettings:
    """The running Engine's settings with the reloadable fields taken from ``new``."""
    fresh = engine_settings(new)
    return dataclasses.replace(running, **{k: getattr(fresh, k) for k in RELOADABLE_ENGINE_SETTINGS})


def paper_book_executor(settings: Settings, cash: Callable[[], float]) -> Any:
    from bot.execution.paper_book import Fees, PaperBookExecutor

    fee = settings.exchange.fee_rate
    return PaperBookExecutor(default_fees=Fees(fee, fee), latency_ms=settings.exchange.paper_latency_ms,
                             slippage_bps=settings.backtest.slippage_bps, cash=cash)


async def restore_paper(engine: Engine, store: Store, settings: Settings) -> None:
    """Paper state after a restart: cash, positions with their stops, decisions, trading state."""
    equity = await store.fetch("equity")
    if equity:
        engine.portfolio.restore_cash(float(equity[-1]["cash"]))
    trailing = engine.settings.stops.trailing_stop_pct
    positions = [Position(r["symbol"], r["amount"], r["avg_price"], r["stop_price"], r["take_profit"],
                          trailing, r["realized_pnl"], r["ts"])
                 for r in await store.fetch("positions") if r["amount"] > 0]
    engine.restore(positions, decided=await store.decided_intent_ids())
    await expire_paper_orders(store)
    await engine.poll_trading_state(force=True)  # a stored HALTED / REDUCING outlives the restart


async def expire_paper_orders(store: Store) -> None:
    """Paper orders the store still holds as live died with the last process (killed before
    it could cancel them): stored as expired, so none is taken for live; the positions
    they did not close stay open, protected by their stops, for the strategy to decide anew."""
    expired = await store.expire_open_orders(LiveClock().now_ms())
    if expired:
        log.warning("paper_orders_expired_at_restart", orders=expired)


def replay_feed(settings: Settings, series: list[Series], resume: dict[str, int | None]) -> ReplayFeed:
    """Recorded candles per series, each resuming right after its last stored candle."""
    exch, start, end = settings.exchange.name, date_to_ms(settings.backtest.start), date_to_ms(settings.backtest.end)
    loaded = []
    for sym, tf in series:
        since, last = start, resume.get(f"{sym}@{tf}")
        if last is not None:  # everything up to the last stored candle was processed
            since = max(since or 0, last + timeframe_ms(tf))
        loaded.append(load_candles_csv(candle_file(settings.data.dir, exch, sym, tf), exch, sym, tf, since, end))
    return ReplayFeed(loaded, speed=settings.feed.replay_speed)


def exchange_feed(settings: Settings, series: list[Series], resume: dict[str, int | None],
                  clock: Clock) -> Feed:
    """The ccxt.pro feed; after a restart it backfills from the oldest last-stored candle.

    ``clock`` is the local wall clock (checked against the exchange's at start).
    """
    from bot.feeds.live import LiveFeed

    since = None
    stored = [(ts, tf) for (sym, tf) in series if (ts := resume.get(f"{sym}@{tf}")) is not None]
    if stored and settings.daemon.backfill:
        since = min(ts + timeframe_ms(tf) for ts, tf in stored)
    lfs = live_feed_settings(settings, since_ms=since)
    if not settings.daemon.check_clock_skew:
        lfs = dataclasses.replace(lfs, max_clock_skew_ms=None)
    from bot.execution.wiring import make_ccxt_client

    return LiveFeed(make_ccxt_client(settings, pro=True), lfs, clock)
