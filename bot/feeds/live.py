"""The ccxt.pro live feed: closed candles exactly once and in order, plus books and trades.

One task per (symbol, stream). Candles: ccxt's unified ``watch_ohlcv`` keeps the kline
subscription, for any exchange id. Closure is decided from timestamps, never from one
exchange's own "closed" flag: a bar is closed once the stream carries a later bar, or
once the clock has passed its close time. The stream says *when*; the closed bars' values
are then read over REST ``fetch_ohlcv`` (up to the later bar, or up to the exchange's own
time), so they are the exchange's final values even when the last push before the close
was lost. A bar is emitted only if it directly follows the last emitted one; anything
missed (a disconnect, a lost message, a stale stream) is backfilled the same way, so the
consumer sees a gap-free (as far as the exchange has data), duplicate-free, ordered
sequence per (symbol, timeframe).
Backfilled bars that closed longer ago than ``backfill_grace_bars`` carry
``Candle.backfilled``: the Engine opens no position on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import ccxt.pro as ccxtpro
import structlog

from bot.core.clock import Clock
from bot.core.events import Candle, MarketEvent, OrderBook, Side, Trade, timeframe_ms
from bot.core.backoff import Backoff
from bot.feeds.live_settings import LiveFeedSettings
from bot.feeds.stream_state import CandleState, ClockSkewError, StreamStats

log = structlog.get_logger(__name__)

_STOP = object()
# what a stream survives by backing off and re-subscribing: ccxt's errors, and a socket that
# closes under a subscription request (aiohttp raises its own error for that, not ccxt's)
STREAM_ERRORS = (ccxtpro.BaseError, ConnectionError, aiohttp.ClientError)


class LiveFeed:
    """``async for event in feed`` yields ``Candle``/``OrderBook``/``Trade`` events."""

    def __init__(self, exchange: Any, settings: LiveFeedSettings, clock: Clock) -> None:
        self.exchange = exchange
        self.settings = settings
        self.clock = clock
        self.stats: dict[str, StreamStats] = defaultdict(StreamStats)
        self._queue: asyncio.Queue[object] = asyncio.Queue(settings.queue_size)
        self._tasks: list[asyncio.Task[None]] = []
        self._rng = random.Random(settings.seed)
        self._started = False
        self._closing = False
        self._failure: BaseException | None = None
        self.malformed = 0  # undecodable / unprocessable websocket messages survived
        self.connections: dict[str, int] = defaultdict(int)  # websocket connects per url

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await self._with_retry("load_markets", self.exchange.load_markets)
        await self.check_clock_skew()
        self._guard_malformed()
        self._count_connections()
        s = self.settings
        for symbol in s.symbols:
            for tf in s.timeframes:
                self._spawn(self._candle_loop(symbol, tf), f"ohlcv:{symbol}:{tf}")
            if s.order_book:
                self._spawn(self._book_loop(symbol), f"book:{symbol}")
            if s.trades:
                self._spawn(self._trades_loop(symbol), f"trades:{symbol}")

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._on_task_done)
        self._tasks.append(task)

    def _on_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._closing:
            return
        exc = task.exception()
        if exc is not None:
            log.error("feed.task_failed", task=task.get_name(), error=repr(exc))
            self._failure = exc
            self._queue.put_nowait(_STOP)

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.exchange.close()

    async def __aiter__(self) -> AsyncIterator[MarketEvent]:  # type: ignore[override]
        await self.start()
        while True:
            item = await self._queue.get()
            if item is _STOP:
                if self._failure is not None:
                    raise self._failure
                return
            yield item  # type: ignore[misc]

    # -- start-up checks -------------------------------------------------------------------

    async def check_clock_skew(self) -> int:
        """Exchange time minus local time (ms); raises ``ClockSkewError`` beyond the limit."""
        limit = self.settings.max_clock_skew_ms
        if limit is None:
            return 0
        before = self.clock.now_ms()
        server = await self._with_retry("fetch_time", self.exchange.fetch_time)
        after = self.clock.now_ms()
        skew = int(server) - (before + after) // 2
        if abs(skew) > limit:
            raise ClockSkewError(
                f"local clock is {-skew:+d} ms off {self.settings.exchange}'s time "
                f"(allowed: {limit} ms); fix the system clock (NTP) before trading")
        log.info("feed.clock_ok", skew_ms=skew)
        return skew

    async def _with_retry(self, what: str, fn: Callable[..., Any], *args: Any,
                          attempts: int = 8, **kwargs: Any) -> Any:
        backoff = self._backoff()
        for attempt in range(attempts):
            try:
                return await fn(*args, **kwargs)
            except (ccxtpro.NetworkError, ccxtpro.ExchangeNotAvailable) as exc:
                if attempt == attempts - 1:
                    raise
                delay = backoff.next_delay()
                log.warning("feed.rest_retry", call=what, error=str(exc)[:200], delay_s=delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _backoff(self) -> Backoff:
        s = self.settings
        return Backoff(s.reconnect_initial_s, s.reconnect_max_s, 2.0, s.reconnect_jitter,
                       random.Random(self._rng.random()))

    # -- candles -------------------------------------------------------------------------

    def _guard_malformed(self) -> None:
        """Survive undecodable frames: ccxt's receive loop would otherwise die on them."""
        original_client = self.exchange.client

        def client(url: str) -> Any:
            c = original_client(url)
            if not getattr(c, "_neuralbot_guarded", False):
                handle = c.handle_text_or_binary_message

                def guarded(data: Any) -> Any:
                    try:
                        return handle(data)
                    except ValueError as exc:  # json / orjson decode errors, bad numbers
                        self.malformed += 1
                        log.warning("feed.malformed_message", url=url, error=str(exc)[:200],
                                    sample=str(data)[:120])
                        return None

                c.handle_text_or_binary_message = guarded
                c._neuralbot_guarded = True
            return c

        self.exchange.client = client

    def reconnects_by_stream(self) -> dict[str, int]:
        """Network errors each stream's watch call raised (see ``StreamStats.reconnects``)."""
        return {key: st.reconnects for key, st in self.stats.items()}

    @property
    def reconnects(self) -> int:
        """Websocket re-connections (every connect to a url after its first), however caused."""
        return sum(max(0, n - 1) for n in self.connections.values())

    def _count_connections(self) -> None:
        """Count every established websocket: ccxt calls ``on_connected`` once per connection."""
        original = self.exchange.on_connected

        def on_connected(client: Any, message: Any = None) -> Any:
            self.connections[client.url] += 1
            if self.connections[client.url] > 1:
                log.info("feed.reconnected", url=client.url, reconnects=self.reconnects)
            return original(client, message)

        self.exchange.on_connected = on_connected

    def _candle(self, symbol: str, tf: str, row: list[Any], backfilled: bool = False) -> Candle:
        return Candle(self.settings.exchange, symbol, tf, int(row[0]), float(row[1]),
                      float(row[2]), float(row[3]), float(row[4]), float(row[5]), backfilled)

    async def _candle_loop(self, symbol: str, tf: str) -> None:
        key = f"ohlcv:{symbol}:{tf}"
        tf_ms = timeframe_ms(tf)
        s = self.settings
        stale_s = s.stale_multiple * s.kline_interval_s
        backoff = self._backoff()
        if s.since_ms is not None:
            state = CandleState(symbol, tf, tf_ms, s.since_ms - tf_ms, self.stats[key])
            need_backfill = True
        else:
            now = int(await self._with_retry("fetch_time", self.exchange.fetch_time))
            # bars closed before we started are history, not news
            state = CandleState(symbol, tf, tf_ms, (now // tf_ms) * tf_ms - tf_ms,
                                 self.stats[key])
            need_backfill = False
        while True:
            try:
                if need_backfill:
                    await self._backfill(state, None)
                    need_backfill = False
                rows = await asyncio.wait_for(self.exchange.watch_ohlcv(symbol, tf), timeout=stale_s)
                backoff.reset()
                newest = max(self._open_times(rows, state), default=state.last_ts)
                if newest > state.last_ts + tf_ms:  # a later bar streams: every bar before it closed
                    await self._backfill(state, newest, closing_ts=newest - tf_ms)
                if newest > state.last_ts and self.clock.now_ms() >= newest + tf_ms:
                    await self._backfill(state, None, closing_ts=newest)  # its close time has passed
            except asyncio.TimeoutError:
                state.stats.stale += 1
                log.warning("feed.stale", stream=key, silent_s=stale_s)
                await self._reset_connection(f"ohlcv::{symbol}::{tf}")
                need_backfill = True
            except STREAM_ERRORS as exc:
                need_backfill = True
                await self._on_stream_error(key, state.stats, exc, backoff)

    def _open_times(self, rows: Any, state: CandleState) -> list[int]:
        """Open times of streamed rows that can be bars of this stream; others count as malformed.

        Only *when* comes from the stream, so a bogus time (off the grid, not a number, or
        beyond the clock's next bar) must not pass: it would make a forming bar look closed.
        """
        limit = self.clock.now_ms() + (self.settings.max_clock_skew_ms or 0) + state.tf_ms
        out = []
        for row in rows if isinstance(rows, list) else ():
            ts = row[0] if isinstance(row, list | tuple) and row else None
            if isinstance(ts, int) and not isinstance(ts, bool) and ts % state.tf_ms == 0 and ts <= limit:
                out.append(ts)
            else:
                self.malformed += 1
                log.warning("feed.malformed_row", stream=f"{state.symbol}:{state.timeframe}", row=str(row)[:120])
        return out

    async def _emit_candle(self, state: CandleState, row: list[Any], backfilled: bool) -> None:
        """The one place candles leave: strictly after the last emitted one, or dropped."""
        ts = int(row[0])
        if ts <= state.last_ts:
            state.stats.duplicates += 1
            return
        # history, not news: closed longer ago than the grace (at most one bar)
        grace_ms = min(max(self.settings.backfill_grace_bars, 0.0), 1.0) * state.tf_ms
        history = backfilled and self.clock.now_ms() - (ts + state.tf_ms) > grace_ms
        candle = self._candle(state.symbol, state.timeframe, row, history)
        state.last_ts = ts
        if backfilled:
            state.stats.backfilled += 1
        await self._emit(candle, state.stats)

    async def _backfill(self, state: CandleState, before_ts: int | None,
                        closing_ts: int | None = None) -> None:
        """Emit closed bars after ``state.last_ts`` (and before ``before_ts``) from REST.

        ``closing_ts``: the bar the stream was just seen closing; any other is a backfill.
        """
        tf_ms = state.tf_ms
        if before_ts is None and closing_ts is not None and await self._closed_by_later_bar(state, closing_ts):
            return
        if before_ts is None:
            horizon = int(await self.exchange.fetch_time())  # bars closed by now
        else:
            # everything before a streamed bar is closed, as long as the clock agrees: a bogus
            # open time in a push must not make the forming bar look closed
            horizon = min(before_ts, self.clock.now_ms() + (self.settings.max_clock_skew_ms or 0))
        since = state.last_ts + tf_ms
        while since + tf_ms <= horizon:
            rows = await self.exchange.fetch_ohlcv(state.symbol, state.timeframe, since=since,
                                                   limit=self.settings.backfill_limit)
            for row in rows:
                ts = int(row[0])
                if ts + tf_ms > horizon or (before_ts is not None and ts >= before_ts):
                    return
                await self._emit_candle(state, row, backfilled=ts != closing_ts)
            if not rows or len(rows) < self.settings.backfill_limit:
                return
            since = max(state.last_ts, int(rows[-1][0])) + tf_ms

    async def _closed_by_later_bar(self, state: CandleState, closing_ts: int) -> bool:
        """Emit the bars up to ``closing_ts`` from a REST answer holding a later bar (the exchange opened
        it: the ones before are closed) without asking the exchange's time; ``False``: it holds none."""
        rows = await self.exchange.fetch_ohlcv(state.symbol, state.timeframe, since=state.last_ts + state.tf_ms,
                                               limit=self.settings.backfill_limit)
        if not rows or int(rows[0][0]) > closing_ts or int(rows[-1][0]) <= closing_ts:
            return False  # no later bar yet (or a gap where the closing bar should be)
        for row in rows:
            if int(row[0]) > closing_ts:
                break
            await self._emit_candle(state, row, backfilled=int(row[0]) != closing_ts)
        return True

    async def _emit(self, event: MarketEvent, stats: StreamStats) -> None:
        stats.emitted += 1
        await self._queue.put(event)

    # -- errors and reconnects -------------------------------------------------------------------

    async def _on_stream_error(self, key: str, stats: StreamStats, exc: BaseException,
                               backoff: Backoff) -> None:
        if isinstance(exc, ccxtpro.RateLimitExceeded | ccxtpro.DDoSProtection):
            stats.rate_limited += 1
        elif isinstance(exc, ccxtpro.NetworkError | ConnectionError | aiohttp.ClientError):
            stats.reconnects += 1
        else:
            stats.errors += 1
        delay = backoff.next_delay()
        log.warning("feed.stream_error", stream=key, error_type=type(exc).__name__,
                    error=str(exc)[:200], retry_in_s=round(delay, 3))
        await asyncio.sleep(delay)

    async def _reset_connection(self, message_hash: str) -> None:
        """Close the websocket(s) carrying ``message_hash`` so ccxt reconnects on next watch."""
        for client in list(getattr(self.exchange, "clients", {}).values()):
            hashes = list(getattr(client, "subscriptions", {})) + list(client.futures)
            if any(message_hash in h for h in hashes):
                with contextlib.suppress(Exception):
                    await client.close()

    # -- order books and trades --------------------------------------------------------------------

    async def _book_loop(self, symbol: str) -> None:
        key = f"book:{symbol}"
        stats = self.stats[key]
        s = self.settings
        backoff = self._backoff()
        stale_s = s.stale_multiple * max(s.book_interval_s, 1.0)
        last_nonce = -1
        while True:
            try:
                book = await asyncio.wait_for(
                    self.exchange.watch_order_book(symbol), timeout=stale_s)
                backoff.reset()
                nonce = int(book.get("nonce") or 0)
                if nonce == last_nonce:
                    continue
                last_nonce = nonce
                depth = s.order_book_depth
                bids = tuple((float(p), float(q)) for p, q, *_ in book["bids"][:depth])
                asks = tuple((float(p), float(q)) for p, q, *_ in book["asks"][:depth])
                ts = int(book.get("timestamp") or self.clock.now_ms())
                await self._emit(OrderBook(s.exchange, symbol, ts, bids, asks, nonce), stats)
            except asyncio.TimeoutError:
                stats.stale += 1
                log.warning("feed.stale", stream=key, silent_s=stale_s)
                await self._reset_connection(f"orderbook::{symbol}")
            except ccxtpro.ChecksumError as exc:
                stats.resyncs += 1  # ccxt dropped the book; the next watch re-snapshots
                log.warning("feed.book_resync", stream=key, reason=str(exc)[:200])
            except STREAM_ERRORS as exc:
                await self._on_stream_error(key, stats, exc, backoff)

    async def _trades_loop(self, symbol: str) -> None:
        key = f"trades:{symbol}"
        stats = self.stats[key]
        s = self.settings
        backoff = self._backoff()
        stale_s = s.stale_multiple * s.trades_interval_s
        last_id = ""
        while True:
            try:
                trades = await asyncio.wait_for(self.exchange.watch_trades(symbol), timeout=stale_s)
                backoff.reset()
                for t in trades:
                    tid = str(t.get("id") or "")
                    if tid and last_id and tid.isdigit() and last_id.isdigit() \
                            and int(tid) <= int(last_id):
                        stats.duplicates += 1
                        continue
                    last_id = tid or last_id
                    side = Side.SELL if t.get("side") == "sell" else Side.BUY
                    await self._emit(Trade(s.exchange, symbol, int(t["timestamp"]),
                                           float(t["price"]), float(t["amount"]), side, tid),
                                     stats)
            except asyncio.TimeoutError:
                stats.stale += 1
                log.warning("feed.stale", stream=key, silent_s=stale_s)
                await self._reset_connection(f"trade::{symbol}")
            except STREAM_ERRORS as exc:
                await self._on_stream_error(key, stats, exc, backoff)
