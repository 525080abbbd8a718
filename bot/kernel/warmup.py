"""Warm-up at start: the Engine's buffers and every strategy see the history before trading.

A restarted daemon must give, from its first live bar, the signals of one that never
stopped. So, before the feed starts, each traded series is replayed through
:meth:`bot.engine.engine.Engine.warm` (candle buffers + ``Strategy.warm``, no signal, no order)
over the last ``N`` closed bars, where ``N`` is what its strategies ask for
(``Strategy.history_bars``: a neural ensemble's settled features and full buffer, a
confluence's 1D/1W members...), at least ``daemon.warmup_bars`` and at most
``daemon.max_warmup_bars``.

The bars come from the store first (everything the daemon processed is stored); what
the store lacks comes from the recorded data (replay feed) or is paged over REST from
the exchange (exchange feed, unless ``daemon.backfill = false``; kept in memory: the
store holds what the daemon processed). The feed then resumes after the last warmed bar.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from bot.config.settings import Settings, date_to_ms
from bot.core.clock import LiveClock
from bot.core.events import Candle, timeframe_ms
from bot.engine.engine import Engine
from bot.marketdata.candle_csv import candle_file, load_candles_csv
from bot.store.store import Store

log = structlog.get_logger("bot.app.daemon")

Series = tuple[str, str]


async def warm_up(engine: Engine, store: Store, settings: Settings, series: list[Series],
                  rest_client: Any = None, connect: Callable[[], Any] | None = None) -> dict[str, int | None]:
    """Warm every series; return, per ``SYMBOL@tf``, the open time of the last warmed bar
    (where the feed resumes; ``None``: nothing known). Without ``rest_client``, an exchange
    feed that backfills pages over a client of its own from ``connect`` (closed after)."""
    rest, own = rest_client, False
    if rest is None and connect is not None and settings.feed.source == "exchange" and settings.daemon.backfill:
        rest, own = connect(), True  # public market data only
    try:
        # the exchange's clock says which bars have closed (a loopback exchange runs its own time)
        now = int(await rest.fetch_time()) if rest is not None else LiveClock().now_ms()
        resume: dict[str, int | None] = {}
        for sym, tf in series:
            candles = await _history(engine, store, settings, sym, tf, rest, now)
            engine.warm(candles)
            resume[f"{sym}@{tf}"] = candles[-1].ts if candles else await store.last_candle_ts(
                settings.exchange.name, sym, tf)
        return resume
    finally:
        if own:
            await rest.close()


async def _history(engine: Engine, store: Store, settings: Settings, sym: str, tf: str,
                   rest: Any, now: int) -> list[Candle]:
    """The last ``N`` closed bars of a series: stored ones, completed from the data source."""
    exch, d, step = settings.exchange.name, settings.daemon, timeframe_ms(tf)
    asked = engine.history_bars(sym, tf)
    need = min(max(d.warmup_bars, asked), d.max_warmup_bars)
    if asked > need:
        log.warning("warmup_capped", symbol=sym, timeframe=tf, needed=asked, warmed=need,
                    hint="raise daemon.max_warmup_bars for an exact warm-up")
    last = await store.last_candle_ts(exch, sym, tf)
    if need == 0:
        return []
    if last is not None:
        end = last + step
    elif settings.feed.source == "replay":
        end = date_to_ms(settings.backtest.start)  # the replay starts there: warm on what precedes it
        if end is None:
            return []
    else:
        end = now // step * step  # the bar in progress is not history yet
    since = end - need * step
    candles = await store.load_candles(exch, sym, tf, since, end) if last is not None else []
    if len(candles) < need:
        before = candles[0].ts if candles else end
        older = await _source(settings, rest, sym, tf, since, before)
        candles = older + candles
    log.info("warmup_loaded", symbol=sym, timeframe=tf, bars=len(candles), needed=need,
             first_ts=candles[0].ts if candles else None, last_ts=candles[-1].ts if candles else None)
    return candles


async def _source(settings: Settings, rest: Any, sym: str, tf: str, since: int, until: int) -> list[Candle]:
    """Bars in ``[since, until)`` the store lacks: recorded data, or the exchange over REST."""
    exch = settings.exchange.name
    if settings.feed.source == "replay":
        path = candle_file(settings.data.dir, exch, sym, tf)
        return load_candles_csv(path, exch, sym, tf, since, until) if path.exists() else []
    if rest is None:
        return []
    # ccxt: as above
    from bot.marketdata.download import download

    fetched = _Collected()
    await download(rest, fetched, exchange_name=exch, symbol=sym, timeframe=tf, since_ms=since, until_ms=until)
    return fetched.candles


class _Collected:
    """Where ``bot.marketdata.download.download`` pages REST history for a warm-up: kept in memory (the
    store holds what the daemon processed), paged from ``since`` whatever the store holds."""

    def __init__(self) -> None:
        self.candles: list[Candle] = []

    async def upsert_candles(self, candles: list[Candle]) -> int:
        self.candles += candles
        return len(candles)

    async def last_candle_ts(self, exchange: str, symbol: str, timeframe: str) -> int | None:
        return None
