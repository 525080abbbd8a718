"""The loopback Binance exchange: one aiohttp server for REST and websockets on 127.0.0.1.

    async with SimExchange(SimSettings(speed=3600)) as sim:
        exchange = make_ccxt_binance(sim.http_url, sim.ws_url)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from types import TracebackType

import structlog
from aiohttp import web

from bot.sim import info
from bot.sim.filters import fmt
from bot.sim.books import Books, make_ladder
from bot.sim.recordings import (
    CandleSeries, Recording, load_candle_series, load_recordings, market_id,
)
from bot.sim.errors import OrderError
from bot.sim.faults import FaultCounters, HttpFaults
from bot.sim.feeds import StreamFeed
from bot.sim.limits import RateLimiter
from bot.sim.market import Level, SimTime, price_range
from bot.sim.marketdata import MarketData
from bot.sim.matching import Matcher
from bot.sim.orders import Market
from bot.sim.private_ws import UserStreams
from bot.sim.rest import RestApi
from bot.sim.settings import FaultSettings, SimSettings
from bot.sim.stream_names import parse_stream
from bot.sim.streams import KlineStreamer, RecordingPlayer
from bot.sim.ws import Connection, Hub, serve_stream_socket

log = structlog.get_logger(__name__)


class SimExchange:
    def __init__(self, settings: SimSettings | None = None) -> None:
        self.settings = settings or SimSettings()
        self.faults: FaultSettings = self.settings.faults
        self.counters = FaultCounters()
        self.http_faults = HttpFaults(self.counters)
        self.rest_requests = 0
        s = self.settings
        self.series: dict[tuple[str, str], CandleSeries] = load_candle_series(
            s.data_dir, s.exchange, s.symbols, s.timeframes)
        recordings: dict[str, Recording] = load_recordings(s.data_dir, s.exchange) \
            if s.book_replay and s.matching_book != "synthetic" else {}
        self.markets: dict[str, Market] = {}
        for symbol, _tf in self.series:
            base, quote = symbol.split("/")
            self.markets[market_id(symbol)] = Market(symbol, market_id(symbol), base, quote)
        for mid in recordings:
            if mid not in self.markets and mid.endswith("USDT") and not s.symbols:
                self.markets[mid] = Market(f"{mid[:-4]}/USDT", mid, mid[:-4], "USDT")
        self.recordings = {m: r for m, r in recordings.items() if m in self.markets}
        if not self.markets:
            raise FileNotFoundError(f"no market data found under {s.data_dir}")
        first = min((int(x.ts[0]) for x in self.series.values() if len(x.ts)), default=0)
        self._start_ms = s.start_ms if s.start_ms is not None else first
        self.hub = Hub()
        self.hub.on_subscribe = self._on_subscribe
        self.time: SimTime | None = None
        self.players: dict[str, RecordingPlayer] = {}
        self.data = MarketData(self.series, self.now_ms, s.trades_per_bar)
        self.books = Books(s.matching_book, self.players, self.price,
                           make_ladder(s.synthetic_spread_bps, s.synthetic_levels,
                                       s.synthetic_level_qty))
        self.feed = StreamFeed(self)
        self.rate_limiter = RateLimiter(s.rate_limits, lambda: asyncio.get_running_loop().time())
        self._streamers: dict[str, KlineStreamer] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.matcher = Matcher(self.markets, s.balances, s.taker_fee, s.maker_fee,
                               lambda mid: self.book_levels(mid, 50), self.now_ms, self.price)
        self._stops_checked: dict[str, int] = {}  # mid -> sim time stops were last judged at
        self.user_streams = UserStreams(self)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.time = SimTime(self._start_ms, self.settings.speed, loop.time)
        for mid, rec in self.recordings.items():
            player = RecordingPlayer(rec, self.hub, self.settings.book_speed, loop.time,
                                     self._on_recorded_diff,
                                     verbatim=self.settings.matching_book == "recorded")
            self.players[mid] = player
            self._tasks.append(asyncio.create_task(player.run()))
        self._tasks.append(asyncio.create_task(self._watch_stops()))
        self._tasks.append(asyncio.create_task(self.feed.run()))
        api = RestApi(self)
        app = web.Application(middlewares=[api.fault_middleware])
        app.add_routes(api.routes())
        app.add_routes([
            web.get("/ws", self._stream_socket), web.get("/ws/{tail:.*}", self._stream_socket),
            web.get("/stream", self._stream_socket), web.get("/ws-api/v3", self.user_streams.serve),
        ])
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None,
                                     shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self.port = int(sockets[0].getsockname()[1])
        log.info("sim.started", http=self.http_url, ws=self.ws_url, markets=sorted(self.markets),
                 start_ms=self._start_ms, speed=self.settings.speed)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimExchange:
        await self.start()
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.settings.host}:{self.port}"

    def set_faults(self, faults: FaultSettings) -> None:
        """Switch faults at run time (tests turn them on for one phase)."""
        self.faults = faults

    # -- time and market state ----------------------------------------------------------------

    def now_ms(self) -> int:
        if self.time is None:
            return self._start_ms
        now = self.time.now_ms()
        end = self.settings.end_ms
        return now if end is None else min(now, end)

    def price(self, mid: str) -> float | None:
        """The last traded price: the replayed candle path on the tick grid (else the book mid)."""
        price = self.data.path_price(mid, self.now_ms())
        if price is not None:
            return self.data.round_tick(mid, price)
        player = self.players.get(mid)
        if player is not None:
            bid, ask = player.book.best()
            if bid and ask:
                return (bid[0] + ask[0]) / 2
        return None

    def book_levels(self, mid: str, limit: int) -> tuple[list[Level], list[Level]]:
        return self.books.levels(mid, limit)

    def ticker(self, mid: str, window_ms: int = 86_400_000) -> dict:
        bids, asks = self.book_levels(mid, 1)
        stats = self.data.window_stats(mid, window_ms)
        last = stats["lastPrice"]
        bid, ask = (bids[0] if bids else None), (asks[0] if asks else None)
        return {"symbol": mid} | stats | {
            "bidPrice": fmt(bid[0]) if bid else last, "bidQty": fmt(bid[1]) if bid else "0.00000000",
            "askPrice": fmt(ask[0]) if ask else last, "askQty": fmt(ask[1]) if ask else "0.00000000",
        }

    def exchange_info(self) -> dict:
        return info.exchange_info(self.markets, self.settings, self.now_ms())

    def account(self) -> dict:
        return info.account(self.settings, self.matcher.balances(), self.now_ms())

    def commission_rates(self) -> dict:
        return info.commission_rates(self.settings)

    # -- streams --------------------------------------------------------------------------

    def _on_subscribe(self, name: str) -> str | None:
        if name == self.user_streams.listen_key:  # the account's events, bare
            return None
        stream = parse_stream(name, set(self.markets))
        if isinstance(stream, str):
            return stream
        if stream.kind != "kline" or name in self._streamers or self.time is None:
            return None
        assert stream.mid is not None
        try:
            source = self.data.source(stream.mid, stream.arg)
        except OrderError as exc:
            return exc.msg
        streamer = KlineStreamer(source, stream.mid, self.hub, self.time,
                                 self.settings.kline_updates, self.settings.end_ms)
        self._streamers[name] = streamer
        self._tasks.append(asyncio.create_task(streamer.run()))
        return None

    def _on_recorded_diff(self, mid: str, diff: dict) -> None:
        if self.books.raw(mid):
            self.feed.on_recorded_diff(mid, diff)
            self.on_book(mid)

    def on_book(self, mid: str) -> None:
        """The book changed: judge stops, fill resting orders it now crosses."""
        if self.matcher.open_orders(mid):
            self.check_stops(mid)
            self.matcher.on_book(mid)

    # -- stop orders ----------------------------------------------------------------------

    def check_stops(self, mid: str | None = None) -> int:
        """Trigger stop orders the price crossed since they were last judged (any request does this)."""
        fired = 0
        for order_mid in {o.market.mid for o in self.matcher.pending_stops(mid)}:
            now = self.now_ms()
            since = self._stops_checked.get(order_mid, now)
            self._stops_checked[order_mid] = now
            series = self.data.base(order_mid)
            window = price_range(series, min(since, now), now) if series is not None else None
            if window is None:
                price = self.price(order_mid)
                window = None if price is None else (price, price)
            if window is not None:
                fired += self.matcher.check_stops(order_mid, *window)
        for stale in set(self._stops_checked) - {o.market.mid for o in self.matcher.pending_stops()}:
            del self._stops_checked[stale]
        return fired

    async def _watch_stops(self, every_s: float = 0.02) -> None:
        while True:
            await asyncio.sleep(every_s)
            if self.matcher.pending_stops():
                self.check_stops()

    async def _stream_socket(self, request: web.Request) -> web.WebSocketResponse:
        return await serve_stream_socket(request, self.hub, lambda: self.faults, self.counters,
                                         self._timed_drop)

    def _timed_drop(self, conn: Connection) -> asyncio.Task[None] | None:
        every_s = self.faults.drop_every_s
        if not every_s:
            return None

        async def drop() -> None:
            await asyncio.sleep(every_s)
            self.counters.drops += 1
            conn.close_soon()

        return asyncio.create_task(drop())


def replace_faults(settings: SimSettings, **changes: object) -> SimSettings:
    return dataclasses.replace(settings, faults=dataclasses.replace(settings.faults, **changes))
