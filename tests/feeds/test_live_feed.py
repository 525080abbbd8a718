"""The ccxt.pro live feed against the loopback exchange, with injected faults."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from bot.marketdata.candle_csv import load_candles_csv
from bot.core.events import Candle, OrderBook
from bot.sim import FaultSettings, SimExchange, SimSettings, make_ccxt_binance
from bot.sim.testing import ExchangeClock, reference_books
from bot.feeds.live import ClockSkewError, LiveFeed
from bot.feeds.live_settings import LiveFeedSettings

START = 1_577_836_800_000  # 2020-01-01
HOUR = 3_600_000
MS_PER_CANDLE = 20  # real ms per replayed hour


def sim_settings(data_dir: Path, bars: int, faults: FaultSettings, **kw: object) -> SimSettings:
    return SimSettings(data_dir=data_dir, speed=HOUR / MS_PER_CANDLE, start_ms=START,
                       end_ms=START + bars * HOUR, symbols=("BTC/USDT",), timeframes=("1h",),
                       book_replay=False, faults=faults, **kw)  # type: ignore[arg-type]


def feed_settings(**kw: object) -> LiveFeedSettings:
    base: dict[str, object] = dict(symbols=("BTC/USDT",), timeframes=("1h",), since_ms=START,
                                   reconnect_initial_s=0.005, reconnect_max_s=0.05,
                                   kline_interval_s=0.5, max_clock_skew_ms=None, seed=7)
    base.update(kw)
    return LiveFeedSettings(**base)  # type: ignore[arg-type]


async def collect_candles(sim: SimExchange, settings: LiveFeedSettings, end: int) -> tuple[
        list[Candle], LiveFeed]:
    feed = LiveFeed(make_ccxt_binance(sim.http_url, sim.ws_url), settings, ExchangeClock(sim))
    got: list[Candle] = []
    try:
        async for event in feed:
            assert isinstance(event, Candle)
            got.append(event)
            if event.close_ts >= end:
                break
    finally:
        await feed.close()
    return got, feed


def expected(data_dir: Path, bars: int) -> list[Candle]:
    return load_candles_csv(data_dir / "ohlcv/binance/BTC_USDT-1h.csv.gz",
                            since_ms=START, until_ms=START + bars * HOUR)


async def test_hundred_disconnects_lose_no_candle(data_dir: Path) -> None:
    bars = 330
    faults = FaultSettings(drop_every_n_messages=5)
    async with SimExchange(sim_settings(data_dir, bars, faults)) as sim:
        got, feed = await collect_candles(sim, feed_settings(), START + bars * HOUR)
        assert sim.counters.drops >= 100
        drops = sim.counters.drops
    assert got == expected(data_dir, bars)  # every closed candle, exactly once, in order
    stats = feed.stats["ohlcv:BTC/USDT:1h"]
    assert stats.emitted == bars and stats.backfilled > 0
    # every drop the feed lived through was followed by a new connection, counted
    # (the last drop may land after the final candle, before a reconnect is needed)
    assert drops - 1 <= feed.reconnects <= drops


async def test_malformed_json_is_logged_and_survived(data_dir: Path) -> None:
    bars = 120
    faults = FaultSettings(malformed_every_n=7)
    async with SimExchange(sim_settings(data_dir, bars, faults)) as sim:
        got, feed = await collect_candles(sim, feed_settings(), START + bars * HOUR)
        assert sim.counters.malformed > 5
    assert feed.malformed == pytest.approx(sim.counters.malformed, abs=1)
    assert got == expected(data_dir, bars)


async def test_rate_limit_answers_back_off_and_recover(data_dir: Path) -> None:
    bars = 80
    faults = FaultSettings(http_429_every_n=2, http_fault_paths=("/api/v3/klines",))
    # the exchange is 60 bars ahead of the feed's start: those arrive by REST, half 429'd
    settings = dataclasses.replace(sim_settings(data_dir, bars, faults), start_ms=START + 60 * HOUR)
    async with SimExchange(settings) as sim:
        got, feed = await collect_candles(sim, feed_settings(backfill_limit=10),
                                          START + bars * HOUR)
        assert sim.counters.http_429 >= 3
    stats = feed.stats["ohlcv:BTC/USDT:1h"]
    assert stats.rate_limited >= 3 and stats.backfilled >= 60
    assert got == expected(data_dir, bars)


async def test_clock_skew_beyond_limit_refuses_to_start(data_dir: Path) -> None:
    settings = SimSettings(data_dir=data_dir, speed=1.0, start_ms=START, symbols=("BTC/USDT",),
                           timeframes=("1h",), book_replay=False)
    async with SimExchange(settings) as sim:
        fs = feed_settings(max_clock_skew_ms=1000, since_ms=None)
        skewed = LiveFeed(make_ccxt_binance(sim.http_url), fs, ExchangeClock(sim, -5_000))
        with pytest.raises(ClockSkewError, match="ms off binance's time"):
            await skewed.start()
        await skewed.close()
        ok = LiveFeed(make_ccxt_binance(sim.http_url), fs, ExchangeClock(sim, 0))
        await ok.exchange.load_markets()
        assert abs(await ok.check_clock_skew()) <= 1000
        await ok.close()


async def test_depth_sequence_gap_resyncs_to_the_recorded_book(data_dir: Path) -> None:
    faults = FaultSettings(skip_depth_every_n=40)
    settings = SimSettings(data_dir=data_dir, speed=1.0, start_ms=START, symbols=("BTC/USDT",),
                           timeframes=("1h",), book_speed=8.0, faults=faults,
                           matching_book="recorded")  # compared with the raw recording
    async with SimExchange(settings) as sim:
        fs = feed_settings(order_book=True, order_book_depth=15, since_ms=None,
                           timeframes=(), trades=True)
        feed = LiveFeed(make_ccxt_binance(sim.http_url, sim.ws_url), fs, ExchangeClock(sim))
        books: list[OrderBook] = []
        trades = 0
        try:
            async for event in feed:
                if isinstance(event, OrderBook):
                    if feed.stats["book:BTC/USDT"].resyncs >= 1:
                        books.append(event)
                else:
                    trades += 1
                if len(books) >= 5:
                    break
        finally:
            await feed.close()
        assert sim.counters.depth_skipped >= 1
    assert trades > 0
    ref = reference_books(data_dir, "BTCUSDT", depth=15, upto=books[-1].sequence)
    for book in books:  # after the resync the book equals the one rebuilt from the recording
        bids, asks = ref[book.sequence]
        assert book.bids == bids and book.asks == asks


def _without_closed_flag(exchange: object) -> object:
    """Model an exchange whose kline pushes carry no "closed" flag: strip Binance's ``k.x``."""
    dispatch = exchange.handle_message  # type: ignore[attr-defined]

    def handle_message(client: object, message: object) -> object:
        if isinstance(message, dict) and isinstance(message.get("k"), dict):
            message["k"].pop("x", None)
        return dispatch(client, message)

    exchange.handle_message = handle_message  # type: ignore[attr-defined]
    return exchange


async def test_candle_closure_from_timestamps_for_another_exchange_id(data_dir: Path) -> None:
    import asyncio

    import ccxt.pro as ccxtpro

    from bot.sim.ccxt_config import configure_ccxt

    bars = 60
    async with SimExchange(sim_settings(data_dir, bars, FaultSettings())) as sim:
        client = _without_closed_flag(configure_ccxt(ccxtpro.binanceus({}), sim.http_url, sim.ws_url))
        feed = LiveFeed(client, feed_settings(exchange="binanceus"), ExchangeClock(sim))
        got: list[Candle] = []

        async def collect() -> None:
            async for event in feed:
                assert isinstance(event, Candle)
                got.append(event)
                if event.close_ts >= START + bars * HOUR:
                    return

        try:
            await asyncio.wait_for(collect(), timeout=30)
        finally:
            await feed.close()
    want = [dataclasses.replace(c, exchange="binanceus") for c in expected(data_dir, bars)]
    assert got == want  # every bar, once, in order, with its final values
    stats = feed.stats["ohlcv:BTC/USDT:1h"]
    # closures seen on the stream (the old k.x hook saw none: every bar came from the REST
    # rescue after the stream fell silent); at this replay speed REST lags and batches some
    assert stats.backfilled < stats.emitted


async def test_multi_symbol_multi_timeframe_feed_delivers_every_series_exactly_once(data_dir: Path) -> None:
    days, start = 3, 1_598_918_400_000  # 2020-09-01: BNB/USDT hourly data starts in August 2020
    end = start + days * 24 * HOUR
    sim_cfg = dataclasses.replace(sim_settings(data_dir, days * 24, FaultSettings(drop_every_n_messages=9)),
                                  start_ms=start, end_ms=end, symbols=("BNB/USDT", "BTC/USDT"),
                                  timeframes=("1h", "1d"))
    cfg = feed_settings(symbols=("BNB/USDT", "BTC/USDT"), timeframes=("1h", "1d"), since_ms=start)
    async with SimExchange(sim_cfg) as sim:
        feed = LiveFeed(make_ccxt_binance(sim.http_url, sim.ws_url), cfg, ExchangeClock(sim))
        got: dict[tuple[str, str], list[Candle]] = {}
        try:
            async with asyncio.timeout(120):  # a ceiling, never a pass/fail timing
                async for event in feed:
                    assert isinstance(event, Candle)
                    got.setdefault((event.symbol, event.timeframe), []).append(event)
                    if all(len(got.get((s, tf), [])) >= n
                           for s in cfg.symbols for tf, n in (("1h", days * 24), ("1d", days))):
                        break
        finally:
            await feed.close()
    assert set(got) == {(s, tf) for s in cfg.symbols for tf in cfg.timeframes}
    for (symbol, tf), candles in got.items():
        path = data_dir / f"ohlcv/binance/{symbol.replace('/', '_')}-{tf}.csv.gz"
        want = load_candles_csv(path, symbol=symbol, timeframe=tf, since_ms=start, until_ms=end)
        assert candles[:len(want)] == want, (symbol, tf)  # each series complete, in order, no duplicates


async def test_stale_stream_watchdog_reconnects_and_backfills(data_dir: Path) -> None:
    bars = 60
    async with SimExchange(sim_settings(data_dir, bars, FaultSettings())) as sim:
        feed = LiveFeed(make_ccxt_binance(sim.http_url, sim.ws_url),
                        feed_settings(kline_interval_s=0.05, stale_multiple=4.0), ExchangeClock(sim))
        got: list[Candle] = []
        try:
            async with asyncio.timeout(120):  # a ceiling, never a pass/fail timing
                async for event in feed:
                    assert isinstance(event, Candle)
                    got.append(event)
                    if len(got) == 15:  # the socket stays open but goes silent
                        sim.set_faults(FaultSettings(delay_ms=5_000))
                    if event.close_ts >= START + bars * HOUR:
                        break
        finally:
            await feed.close()
    stats = feed.stats["ohlcv:BTC/USDT:1h"]
    assert stats.stale >= 2  # the watchdog noticed the silence ...
    assert feed.reconnects >= 1 and stats.backfilled > 0  # ... reconnected and fetched what it missed
    assert got == expected(data_dir, bars)  # nothing lost or repeated across the stall


async def test_a_close_whose_rest_answer_holds_the_next_bar_needs_no_exchange_time(data_dir: Path) -> None:
    """The exchange already has the next bar: the closing one is final without asking its time
    (one round trip less between the closing push and the candle)."""
    bars = 40
    async with SimExchange(sim_settings(data_dir, bars, FaultSettings())) as sim:
        client = make_ccxt_binance(sim.http_url, sim.ws_url)
        asked = []
        fetch_time = client.fetch_time

        async def counted_fetch_time(*args: object, **kwargs: object) -> object:
            asked.append(1)
            return await fetch_time(*args, **kwargs)

        client.fetch_time = counted_fetch_time  # type: ignore[method-assign]
        feed = LiveFeed(client, feed_settings(), ExchangeClock(sim))
        got: list[Candle] = []
        try:
            async for event in feed:
                assert isinstance(event, Candle)
                got.append(event)
                if event.close_ts >= START + bars * HOUR:
                    break
        finally:
            await feed.close()
    assert got == expected(data_dir, bars)  # every bar, once, in order, with its final values
    stats = feed.stats["ohlcv:BTC/USDT:1h"]
    assert stats.emitted - stats.backfilled > bars // 2  # most bars were seen closing on the stream
    assert len(asked) < bars // 4  # they were emitted without the exchange's time
