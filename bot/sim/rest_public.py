"""Public market-data endpoints of the loopback exchange (``/api/v3``, unsigned)."""

from __future__ import annotations

import re
from aiohttp import web

from bot.sim.errors import OrderError, mandatory
from bot.sim.filters import fmt
from bot.sim.venue import Venue

_INT = re.compile(r"^-?[0-9]{1,20}$")
_WINDOW = re.compile(r"^(\d{1,3})([mhd])$")
_WINDOW_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000}


def int_param(params: object, name: str, default: int | None, lo: int | None = None,
              hi: int | None = None) -> int | None:
    """An integer parameter as Binance validates it (-1100), clamped to ``[lo, hi]``."""
    raw = params.get(name)  # type: ignore[attr-defined]
    if raw is None or raw == "":
        return default
    if not _INT.match(raw):
        raise OrderError(-1100, f"Illegal characters found in parameter '{name}'; legal range "
                                "is '^[0-9]{1,20}$'.")
    value = int(raw)
    if lo is not None and value < lo:
        value = lo
    if hi is not None and value > hi:
        value = hi
    return value


class PublicApi:
    def __init__(self, sim: Venue) -> None:
        self.sim = sim
        self._cancels = 0

    def public_routes(self) -> list[web.RouteDef]:
        p = "/api/v3"
        return [
            web.get(f"{p}/ping", self.ping), web.get(f"{p}/time", self.time),
            web.get(f"{p}/exchangeInfo", self.exchange_info), web.get(f"{p}/klines", self.klines),
            web.get(f"{p}/uiKlines", self.klines), web.get(f"{p}/depth", self.depth),
            web.get(f"{p}/trades", self.trades), web.get(f"{p}/historicalTrades", self.trades),
            web.get(f"{p}/aggTrades", self.agg_trades), web.get(f"{p}/avgPrice", self.avg_price),
            web.get(f"{p}/ticker/24hr", self.ticker_24h), web.get(f"{p}/ticker", self.ticker),
            web.get(f"{p}/ticker/bookTicker", self.book_ticker),
            web.get(f"{p}/ticker/price", self.ticker_price),
        ]

    def _symbol(self, params: object) -> str:
        raw = params.get("symbol")  # type: ignore[attr-defined]
        if not raw:
            raise mandatory("symbol")
        mid = raw.upper()
        if mid not in self.sim.markets:
            raise OrderError(-1121, "Invalid symbol.")
        return mid

    def _symbols(self, request: web.Request) -> tuple[list[str], bool]:
        """The markets a ticker request names, and whether it named exactly one."""
        q = request.query
        if "symbol" in q:
            return [self._symbol(q)], True
        if "symbols" in q:
            names = re.findall(r'"([A-Za-z0-9]+)"', q["symbols"])
            if not names:
                raise OrderError(-1100, "Illegal characters found in parameter 'symbols'.")
            return [self._symbol({"symbol": n}) for n in names], False
        return sorted(self.sim.markets), False

    async def ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.sim.now_ms()})

    async def exchange_info(self, request: web.Request) -> web.Response:
        return web.json_response(self.sim.exchange_info())

    async def klines(self, request: web.Request) -> web.Response:
        q = request.query
        mid = self._symbol(q)
        if not q.get("interval"):
            raise mandatory("interval")
        limit = int_param(q, "limit", 500, 1, 1000)
        start, end = int_param(q, "startTime", None), int_param(q, "endTime", None)
        return web.json_response(self.sim.data.klines(mid, q["interval"], start, end, limit))

    async def depth(self, request: web.Request) -> web.Response:
        mid = self._symbol(request.query)
        limit = int_param(request.query, "limit", 100, 1, 5000)
        update_id, bids, asks = self.sim.books.snapshot(mid, limit)
        return web.json_response({
            "lastUpdateId": update_id,
            "bids": [[fmt(p), fmt(q)] for p, q in bids],
            "asks": [[fmt(p), fmt(q)] for p, q in asks],
        })

    def _tape_args(self, q: object) -> tuple[str, int, int | None, int | None, int | None]:
        return (self._symbol(q), int_param(q, "limit", 500, 1, 1000), int_param(q, "fromId", None),
                int_param(q, "startTime", None), int_param(q, "endTime", None))

    async def trades(self, request: web.Request) -> web.Response:
        mid, limit, from_id, _, _ = self._tape_args(request.query)
        tape = self.sim.data.trades(mid, limit, from_id, None, None)
        return web.json_response([t.as_trade() for t in tape])

    async def agg_trades(self, request: web.Request) -> web.Response:
        mid, limit, from_id, start, end = self._tape_args(request.query)
        if start is not None and end is not None and end - start > 3_600_000:
            raise OrderError(-1127, "More than 1 hours between startTime and endTime.")
        tape = self.sim.data.trades(mid, limit, from_id, start, end)
        return web.json_response([t.as_agg_trade() for t in tape])

    async def avg_price(self, request: web.Request) -> web.Response:
        mid = self._symbol(request.query)
        return web.json_response({"mins": 5, "price": fmt(self.sim.data.avg_price(mid)),
                                  "closeTime": self.sim.now_ms()})

    async def ticker_24h(self, request: web.Request) -> web.Response:
        mids, one = self._symbols(request)
        out = [self.sim.ticker(mid, 86_400_000) for mid in mids]
        return web.json_response(out[0] if one else out)

    async def ticker(self, request: web.Request) -> web.Response:
        """Rolling-window ticker (``windowSize`` 1m..59m, 1h..23h, 1d..7d; default 1d)."""
        mids, one = self._symbols(request)
        if "symbol" not in request.query and "symbols" not in request.query:
            raise mandatory("symbol")
        m = _WINDOW.match(request.query.get("windowSize", "1d"))
        limits = {"m": 59, "h": 23, "d": 7}
        if m is None or not 1 <= int(m[1]) <= limits[m[2]]:
            raise OrderError(-1100, "Illegal characters found in parameter 'windowSize'.")
        window = int(m[1]) * _WINDOW_MS[m[2]]
        out = []
        for mid in mids:
            t = self.sim.ticker(mid, window)
            for key in ("prevClosePrice", "bidPrice", "bidQty", "askPrice", "askQty", "lastQty"):
                t.pop(key)
            out.append(t)
        return web.json_response(out[0] if one else out)

    async def book_ticker(self, request: web.Request) -> web.Response:
        mids, one = self._symbols(request)
        out = [self.sim.books.book_ticker(mid) for mid in mids]
        return web.json_response(out[0] if one else out)

    async def ticker_price(self, request: web.Request) -> web.Response:
        mids, one = self._symbols(request)
        out = [{"symbol": m, "price": fmt(self.sim.price(m) or 0.0)} for m in mids]
        return web.json_response(out[0] if one else out)
