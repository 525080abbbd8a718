"""Tunables of the ccxt.pro live feed (the lead maps config onto this)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LiveFeedSettings:
    exchange: str = "binance"
    symbols: tuple[str, ...] = ("BTC/USDT",)
    timeframes: tuple[str, ...] = ("1h",)
    order_book: bool = False  # one watch_order_book task per symbol
    order_book_depth: int = 20  # levels emitted in OrderBook events
    trades: bool = False  # one watch_trades task per symbol
    since_ms: int | None = None  # backfill closed candles from here before streaming
    backfill_limit: int = 1000  # candles per fetch_ohlcv page
    # a bar fetched over REST that closed longer ago than this many bars (at most 1) is
    # marked ``backfilled``: it warms state and moves stops but opens no position
    backfill_grace_bars: float = 0.25
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    reconnect_jitter: float = 0.5
    stale_multiple: float = 5.0  # no message for multiple * interval -> reconnect
    kline_interval_s: float = 2.0  # Binance pushes kline updates about every 2 s
    book_interval_s: float = 0.1  # @depth@100ms
    trades_interval_s: float = 30.0  # trades can be quiet; be lenient
    max_clock_skew_ms: int | None = 1000  # None: skip the start-up clock check
    queue_size: int = 10_000
    seed: int | None = None  # RNG seed for backoff jitter (tests)
