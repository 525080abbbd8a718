"""The loopback Binance exchange: one aiohttp server for REST and websockets on 127.0.0.1.

    async with SimExchange(SimSettings(speed=3600)) as sim:
        exchange = make_ccxt_binance(sim.http_url, sim.ws_url)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from types import TracebackType

import numpy as np
import structlog
from aiohttp import web

from bot.exchange_sim.data import (
    CandleSeries, Recording, load_candle_series, load_recordings, market_id,
)
from bot.exchange_sim.faults import FaultCounters, HttpFaults
from bot.exchange_sim.market import Level, SimTime, current_price, price_range, synthetic_levels
from bot.exchange_sim.matching import Market, Matcher
from bot.exchange_sim.private_ws import UserStreams
from bot.exchange_sim.rest import RestApi
from bot.exchange_sim.settings import FaultSettings, SimSettings
from bot.exchange_sim.streams import KlineStreamer, RecordingPlayer
from bot.exchange_sim.ws import Connection, Hub, serve_stream_socket

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
            if s.book_replay else {}
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
                                     self._on_book)
            self.players[mid] = player
            self._tasks.append(asyncio.create_task(player.run()))
        self._tasks.append(asyncio.create_task(self._watch_stops()))
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

    def _price_series(self, mid: str) -> CandleSeries | None:
        m = self.markets[mid]
        options = [s for (sym, _), s in self.series.items() if sym == m.symbol]
        return min(options, key=lambda s: s.tf_ms) if options else None

    def price(self, mid: str) -> float | None:
        series = self._price_series(mid)
        if series is not None:
            return current_price(series, self.now_ms())
        player = self.players.get(mid)
        if player is not None:
            bid, ask = player.book.best()
            if bid and ask:
                return (bid[0] + ask[0]) / 2
        return None

    def book_levels(self, mid: str, limit: int) -> tuple[list[Level], list[Level]]:
        player = self.players.get(mid)
        if player is not None and (self.settings.matching_book == "recorded"
                                   or self._price_series(mid) is None):
            return player.book.top(limit)
        price = self.price(mid)
        if price is None:
            return [], []
        s = self.settings
        bids, asks = synthetic_levels(price, s.synthetic_spread_bps, s.synthetic_levels,
                                      s.synthetic_level_qty)
        return bids[:limit], asks[:limit]

    def book_update_id(self, mid: str) -> int:
        player = self.players.get(mid)
        return player.book.last_update_id if player is not None else self.now_ms()

    def ticker(self, mid: str) -> dict:
        series = self._price_series(mid)
        now = self.now_ms()
        last = self.price(mid) or 0.0
        open_, high, low, vol = last, last, last, 0.0
        if series is not None:
            lo = int(np.searchsorted(series.ts, now - 86_400_000, side="left"))
            hi = int(np.searchsorted(series.ts, now, side="right"))
            if hi > lo:
                window = series.ohlcv[lo:hi]
                open_, vol = float(window[0, 0]), float(window[:, 4].sum())
                high, low = float(window[:, 1].max()), float(window[:, 2].min())
        bids, asks = self.book_levels(mid, 1)
        return {
            "symbol": mid, "priceChange": repr(last - open_),
            "priceChangePercent": repr((last / open_ - 1) * 100 if open_ else 0.0),
            "weightedAvgPrice": repr(last), "prevClosePrice": repr(open_),
            "lastPrice": repr(last), "lastQty": "0.0",
            "bidPrice": repr(bids[0][0] if bids else last), "bidQty": "0.0",
            "askPrice": repr(asks[0][0] if asks else last), "askQty": "0.0",
            "openPrice": repr(open_), "highPrice": repr(high), "lowPrice": repr(low),
            "volume": repr(vol), "quoteVolume": repr(vol * last), "openTime": now - 86_400_000,
            "closeTime": now, "firstId": -1, "lastId": -1, "count": 0,
        }

    def exchange_info(self) -> dict:
        symbols = []
        for mid, m in sorted(self.markets.items()):
            symbols.append({
                "symbol": mid, "status": "TRADING", "baseAsset": m.base,
                "baseAssetPrecision": 8, "quoteAsset": m.quote, "quotePrecision": 8,
                "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT"],
                "icebergAllowed": False,
                "ocoAllowed": False, "otoAllowed": False, "quoteOrderQtyMarketAllowed": True,
                "allowTrailingStop": False, "cancelReplaceAllowed": True,
                "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": "0.00000001",
                     "maxPrice": "1000000.00000000", "tickSize": "0.00000001"},
                    {"filterType": "LOT_SIZE", "minQty": "0.00000001",
                     "maxQty": "9000000.00000000", "stepSize": "0.00000001"},
                    {"filterType": "NOTIONAL", "minNotional": "1.00000000",
                     "applyMinToMarket": True, "maxNotional": "9000000.00000000",
                     "applyMaxToMarket": False, "avgPriceMins": 5},
                ],
                "permissions": [], "permissionSets": [["SPOT"]],
                "defaultSelfTradePreventionMode": "NONE",
                "allowedSelfTradePreventionModes": ["NONE"],
            })
        return {"timezone": "UTC", "serverTime": self.now_ms(), "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": 6000}], "exchangeFilters": [], "symbols": symbols}

    # -- streams --------------------------------------------------------------------------

    def _on_subscribe(self, stream: str) -> None:
        sym, _, kind = stream.partition("@")
        if not kind.startswith("kline_") or stream in self._streamers or self.time is None:
            return
        mid = sym.upper()
        series = self.series.get((self.markets[mid].symbol, kind[6:])) \
            if mid in self.markets else None
        if series is None:
            return
        streamer = KlineStreamer(series, mid, self.hub, self.time, self.settings.kline_updates,
                                 self.settings.end_ms)
        self._streamers[stream] = streamer
        self._tasks.append(asyncio.create_task(streamer.run()))

    def _on_book(self, mid: str) -> None:
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
            series = self._price_series(order_mid)
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
