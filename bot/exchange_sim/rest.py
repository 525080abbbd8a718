"""REST side of the loopback exchange: the Binance spot ``/api/v3`` subset ccxt uses."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import structlog
from aiohttp import web

from bot.exchange_sim.market import rest_klines
from bot.exchange_sim.matching import OrderError

if TYPE_CHECKING:
    from bot.exchange_sim.server import SimExchange

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error(status: int, code: int, msg: str) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status)


class RestApi:
    def __init__(self, sim: SimExchange) -> None:
        self.sim = sim

    def routes(self) -> list[web.RouteDef]:
        p = "/api/v3"
        return [
            web.get(f"{p}/ping", self.ping), web.get(f"{p}/time", self.time),
            web.get(f"{p}/exchangeInfo", self.exchange_info), web.get(f"{p}/klines", self.klines),
            web.get(f"{p}/depth", self.depth), web.get(f"{p}/ticker/24hr", self.ticker_24h),
            web.get(f"{p}/ticker/bookTicker", self.book_ticker),
            web.get(f"{p}/ticker/price", self.ticker_price),
            web.get(f"{p}/account", self.signed(self.account)),
            web.post(f"{p}/order", self.signed(self.order_create)),
            web.post(f"{p}/order/test", self.signed(self.order_test)),
            web.get(f"{p}/order", self.signed(self.order_get)),
            web.delete(f"{p}/order", self.signed(self.order_cancel)),
            web.get(f"{p}/openOrders", self.signed(self.open_orders)),
            web.delete(f"{p}/openOrders", self.signed(self.cancel_all)),
            web.get(f"{p}/allOrders", self.signed(self.all_orders)),
            web.get(f"{p}/myTrades", self.signed(self.my_trades)),
        ]

    @web.middleware
    async def fault_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.sim.rest_requests += 1
        self.sim.check_stops()  # every answer reflects stops the price has crossed by now
        if request.path.startswith("/api/"):
            status = self.sim.http_faults.check(self.sim.faults, request.path)
            if status == 429:
                return web.json_response(
                    {"code": -1003, "msg": "Too many requests; injected by the loopback exchange."},
                    status=429, headers={"Retry-After": str(self.sim.faults.retry_after_s)})
            if status is not None:
                return web.Response(status=status, text="Service Unavailable (injected)")
        return await handler(request)

    # -- signing ----------------------------------------------------------------------

    def signed(self, handler: Callable[[web.Request, dict[str, str]], Awaitable[web.Response]]
               ) -> Handler:
        async def wrapper(request: web.Request) -> web.Response:
            body = await request.text() if request.can_read_body else ""
            query = request.query_string
            total = query + body
            if request.headers.get("X-MBX-APIKEY") != self.sim.settings.api_key:
                return error(401, -2015, "Invalid API-key, IP, or permissions for action.")
            payload, _, sig = total.rpartition("signature=")
            payload = payload[:-1] if payload.endswith("&") else payload
            secret = self.sim.settings.api_secret.encode()
            expected = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
            if not sig or not hmac.compare_digest(expected, sig.split("&")[0]):
                return error(400, -1022, "Signature for this request is not valid.")
            params = dict(parse_qsl(query)) | dict(parse_qsl(body))
            if "timestamp" not in params:
                return error(400, -1102, "Mandatory parameter 'timestamp' was not sent.")
            if self.sim.settings.recv_window_check:
                window = int(params.get("recvWindow", "5000"))
                if abs(self.sim.now_ms() - int(params["timestamp"])) > window:
                    return error(400, -1021, "Timestamp for this request is outside of the recvWindow.")
            try:
                return await handler(request, params)
            except OrderError as exc:
                return error(400, exc.code, exc.msg)
            except (KeyError, ValueError) as exc:
                return error(400, -1102, f"Bad or missing parameter: {exc}")
        return wrapper

    # -- public -----------------------------------------------------------------------

    async def ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    async def time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": self.sim.now_ms()})

    async def exchange_info(self, request: web.Request) -> web.Response:
        return web.json_response(self.sim.exchange_info())

    def _mid(self, request: web.Request) -> str | None:
        mid = request.query.get("symbol", "").upper()
        return mid if mid in self.sim.markets else None

    async def klines(self, request: web.Request) -> web.Response:
        mid, q = self._mid(request), request.query
        interval = q.get("interval", "")
        if mid is None:
            return error(400, -1121, "Invalid symbol.")
        series = self.sim.series.get((self.sim.markets[mid].symbol, interval))
        if series is None:
            return error(400, -1120, "Invalid interval.")
        limit = max(1, min(1000, int(q.get("limit", "500"))))
        start = int(q["startTime"]) if "startTime" in q else None
        end = int(q["endTime"]) if "endTime" in q else None
        return web.json_response(rest_klines(series, self.sim.now_ms(), start, end, limit))

    async def depth(self, request: web.Request) -> web.Response:
        mid = self._mid(request)
        if mid is None:
            return error(400, -1121, "Invalid symbol.")
        limit = max(1, min(5000, int(request.query.get("limit", "100"))))
        bids, asks = self.sim.book_levels(mid, limit)
        return web.json_response({
            "lastUpdateId": self.sim.book_update_id(mid),
            "bids": [[repr(p), repr(q)] for p, q in bids],
            "asks": [[repr(p), repr(q)] for p, q in asks],
        })

    def _tickers(self, request: web.Request) -> list[str] | None:
        if "symbol" in request.query:
            mid = self._mid(request)
            return None if mid is None else [mid]
        return sorted(self.sim.markets)

    async def ticker_24h(self, request: web.Request) -> web.Response:
        mids = self._tickers(request)
        if mids is None:
            return error(400, -1121, "Invalid symbol.")
        out = [self.sim.ticker(mid) for mid in mids]
        return web.json_response(out[0] if "symbol" in request.query else out)

    async def book_ticker(self, request: web.Request) -> web.Response:
        mids = self._tickers(request)
        if mids is None:
            return error(400, -1121, "Invalid symbol.")
        out = []
        for mid in mids:
            bids, asks = self.sim.book_levels(mid, 1)
            if bids and asks:
                out.append({"symbol": mid, "bidPrice": repr(bids[0][0]), "bidQty": repr(bids[0][1]),
                            "askPrice": repr(asks[0][0]), "askQty": repr(asks[0][1])})
        return web.json_response(out[0] if "symbol" in request.query and out else out)

    async def ticker_price(self, request: web.Request) -> web.Response:
        mids = self._tickers(request)
        if mids is None:
            return error(400, -1121, "Invalid symbol.")
        out = [{"symbol": m, "price": repr(self.sim.price(m) or 0.0)} for m in mids]
        return web.json_response(out[0] if "symbol" in request.query else out)

    # -- signed -----------------------------------------------------------------------

    async def account(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response({
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0,
            "sellerCommission": 0, "canTrade": True, "canWithdraw": False, "canDeposit": False,
            "brokered": False, "requireSelfTradePrevention": False, "updateTime": self.sim.now_ms(),
            "accountType": "SPOT", "balances": self.sim.matcher.balances(),
            "permissions": ["SPOT"], "uid": 1,
        })

    async def order_create(self, request: web.Request, params: dict[str, str]) -> web.Response:
        price = float(params["price"]) if "price" in params else None
        order = self.sim.matcher.place(
            params["symbol"].upper(), params["side"].upper(), params["type"].upper(),
            float(params["quantity"]), price, params.get("timeInForce", "GTC"),
            params.get("newClientOrderId"),
            float(params["stopPrice"]) if "stopPrice" in params else None)
        if self.sim.http_faults.order_times_out(self.sim.faults):
            log.info("sim.order.timeout_injected", order_id=order.order_id)
            await asyncio.sleep(self.sim.faults.order_timeout_hang_s)
            return error(503, -1007, "Timeout waiting for response from backend server.")
        body = order.as_binance() | {"transactTime": order.created, "fills": order.fills}
        return web.json_response(body)

    async def order_test(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response({})

    async def order_get(self, request: web.Request, params: dict[str, str]) -> web.Response:
        oid = int(params["orderId"]) if "orderId" in params else None
        order = self.sim.matcher.find(params["symbol"].upper(), oid, params.get("origClientOrderId"))
        return web.json_response(order.as_binance())

    async def order_cancel(self, request: web.Request, params: dict[str, str]) -> web.Response:
        oid = int(params["orderId"]) if "orderId" in params else None
        order = self.sim.matcher.cancel(params["symbol"].upper(), oid,
                                        params.get("origClientOrderId"))
        return web.json_response(order.as_binance())

    async def open_orders(self, request: web.Request, params: dict[str, str]) -> web.Response:
        mid = params.get("symbol", "").upper() or None
        return web.json_response([o.as_binance() for o in self.sim.matcher.open_orders(mid)])

    async def cancel_all(self, request: web.Request, params: dict[str, str]) -> web.Response:
        mid = params["symbol"].upper()
        done = [self.sim.matcher.cancel(mid, o.order_id, None).as_binance()
                for o in self.sim.matcher.open_orders(mid)]
        return web.json_response(done)

    async def all_orders(self, request: web.Request, params: dict[str, str]) -> web.Response:
        mid = params["symbol"].upper()
        return web.json_response([o.as_binance() for o in self.sim.matcher.orders.values()
                                  if o.market.mid == mid])

    async def my_trades(self, request: web.Request, params: dict[str, str]) -> web.Response:
        mid = params["symbol"].upper()
        trades = [t for t in self.sim.matcher.trades if t["symbol"] == mid]
        if "startTime" in params:
            trades = [t for t in trades if t["time"] >= int(params["startTime"])]
        if "fromId" in params:
            trades = [t for t in trades if t["id"] >= int(params["fromId"])]
        limit = int(params.get("limit", "500"))
        return web.json_response(trades[:limit])

