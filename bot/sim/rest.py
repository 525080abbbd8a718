"""REST side of the loopback exchange: Binance spot ``/api/v3``, signed endpoints and the
middleware every answer passes (faults, request weight, Binance JSON errors, never a 500
for a bad request)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

import structlog
from aiohttp import web

from bot.sim.errors import OrderError, mandatory
from bot.sim.limits import weight_of
from bot.sim.orders import parse_order
from bot.sim.rest_public import PublicApi, int_param

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Signed = Callable[[web.Request, dict[str, str]], Awaitable[web.Response]]
_ORDER_PATHS = ("/api/v3/order", "/api/v3/order/oco", "/api/v3/orderList/oco")


def error(status: int, code: int, msg: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)


class RestApi(PublicApi):
    def routes(self) -> list[web.RouteDef]:
        p = "/api/v3"
        return self.public_routes() + [
            web.get(f"{p}/account", self.signed(self.account)),
            web.get(f"{p}/account/commission", self.signed(self.commission)),
            web.post(f"{p}/order", self.signed(self.order_create)),
            web.post(f"{p}/order/test", self.signed(self.order_test)),
            web.get(f"{p}/order", self.signed(self.order_get)),
            web.delete(f"{p}/order", self.signed(self.order_cancel)),
            web.get(f"{p}/openOrders", self.signed(self.open_orders)),
            web.delete(f"{p}/openOrders", self.signed(self.cancel_all)),
            web.get(f"{p}/allOrders", self.signed(self.all_orders)),
            web.get(f"{p}/myTrades", self.signed(self.my_trades)),
            web.post(f"{p}/userDataStream", self.listen_key(self.listen_key_create)),
            web.put(f"{p}/userDataStream", self.listen_key(self.listen_key_keep)),
            web.delete(f"{p}/userDataStream", self.listen_key(self.listen_key_keep)),
        ]

    @web.middleware
    async def fault_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.sim.rest_requests += 1
        self.sim.check_stops()  # every answer reflects stops the price has crossed by now
        if not request.path.startswith("/api/"):
            return await self._answer(request, handler)
        status = self.sim.http_faults.check(self.sim.faults, request.path)
        if status == 429:
            return error(429, -1003, "Too many requests; injected by the loopback exchange.",
                         {"Retry-After": str(self.sim.faults.retry_after_s)})
        if status is not None:
            return web.Response(status=status, text="Service Unavailable (injected)")
        is_order = request.method == "POST" and request.path in _ORDER_PATHS
        limiter = self.sim.rate_limiter
        try:
            limiter.charge(weight_of(request.method, request.path, dict(request.query)), is_order)
        except OrderError as exc:
            headers = limiter.headers(is_order) | {
                "Retry-After": str(exc.retry_after or 1)}
            return error(exc.status, exc.code, exc.msg, headers)
        response = await self._answer(request, handler)
        response.headers.update(limiter.headers(is_order))
        return response

    async def _answer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except OrderError as exc:
            return error(exc.status, exc.code, exc.msg)
        except web.HTTPNotFound:
            return error(404, -5000, f"Path {request.path}, Method {request.method} is invalid")
        except web.HTTPMethodNotAllowed:
            return error(405, -5000, f"Path {request.path}, Method {request.method} is invalid")

    # -- signing ----------------------------------------------------------------------

    def _api_key(self, request: web.Request) -> None:
        if request.headers.get("X-MBX-APIKEY") != self.sim.settings.api_key:
            raise OrderError(-2015, "Invalid API-key, IP, or permissions for action.", 401)

    def signed(self, handler: Signed) -> Handler:
        async def wrapper(request: web.Request) -> web.Response:
            try:
                body = await request.text() if request.can_read_body else ""
            except UnicodeDecodeError:
                raise OrderError(-1100, "Illegal characters found in a parameter.") from None
            query = request.query_string
            self._api_key(request)
            payload = query + body
            payload, _, sig = payload.rpartition("signature=")
            payload = payload[:-1] if payload.endswith("&") else payload
            secret = self.sim.settings.api_secret.encode()
            expected = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
            if not sig or not hmac.compare_digest(expected, sig.split("&")[0]):
                raise OrderError(-1022, "Signature for this request is not valid.")
            params = dict(parse_qsl(query)) | dict(parse_qsl(body))
            if "timestamp" not in params:
                raise mandatory("timestamp")
            stamp = int_param(params, "timestamp", 0)
            if self.sim.settings.recv_window_check:
                window = int_param(params, "recvWindow", 5000)
                if abs(self.sim.now_ms() - stamp) > window:
                    raise OrderError(-1021, "Timestamp for this request is outside of the recvWindow.")
            return await handler(request, params)
        return wrapper

    def listen_key(self, handler: Signed) -> Handler:
        async def wrapper(request: web.Request) -> web.Response:
            self._api_key(request)
            return await handler(request, dict(request.query))
        return wrapper

    # -- signed -----------------------------------------------------------------------

    async def account(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response(self.sim.account())

    async def commission(self, request: web.Request, params: dict[str, str]) -> web.Response:
        mid = self._symbol(params)
        return web.json_response({"symbol": mid} | self.sim.commission_rates())

    async def order_create(self, request: web.Request, params: dict[str, str]) -> web.Response:
        req = parse_order(params)
        order = self.sim.matcher.place(req)
        if self.sim.http_faults.order_times_out(self.sim.faults):
            log.info("sim.order.timeout_injected", order_id=order.order_id)
            await asyncio.sleep(self.sim.faults.order_timeout_hang_s)
            return error(503, -1007, "Timeout waiting for response from backend server.")
        return web.json_response(order.response(req.resp_type))

    async def order_test(self, request: web.Request, params: dict[str, str]) -> web.Response:
        self.sim.matcher.validate(parse_order(params))
        if params.get("computeCommissionRates", "").lower() == "true":
            return web.json_response(self.sim.commission_rates())
        return web.json_response({})

    def _order_ref(self, params: dict[str, str]) -> tuple[str, int | None, str | None]:
        oid = int_param(params, "orderId", None)
        return self._symbol(params), oid, params.get("origClientOrderId") or None

    async def order_get(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response(self.sim.matcher.find(*self._order_ref(params)).as_binance())

    async def order_cancel(self, request: web.Request, params: dict[str, str]) -> web.Response:
        ref = self._order_ref(params)
        if ref[1] is None and ref[2] is None:
            self.sim.matcher.find(*ref)  # -1102: neither id sent
        order = self.sim.matcher.cancel(*ref)
        return web.json_response(order.canceled(self._cancel_id(params), self.sim.now_ms()))

    def _cancel_id(self, params: dict[str, str]) -> str:
        self._cancels += 1
        return params.get("newClientOrderId") or f"sim-cancel-{self._cancels}"

    async def open_orders(self, request: web.Request, params: dict[str, str]) -> web.Response:
        mid = self._symbol(params) if "symbol" in params else None
        return web.json_response([o.as_binance() for o in self.sim.matcher.open_orders(mid)])

    async def cancel_all(self, request: web.Request, params: dict[str, str]) -> web.Response:
        mid = self._symbol(params)
        resting = self.sim.matcher.open_orders(mid)
        if not resting:
            raise OrderError(-2011, "Unknown order sent.")
        now = self.sim.now_ms()
        return web.json_response([self.sim.matcher.cancel(mid, o.order_id, None)
                                  .canceled(self._cancel_id({}), now) for o in resting])

    async def all_orders(self, request: web.Request, params: dict[str, str]) -> web.Response:
        mid = self._symbol(params)
        limit = int_param(params, "limit", 500, 1, 1000)
        start = int_param(params, "orderId", 0)
        orders = [o.as_binance() for o in self.sim.matcher.orders.values()
                  if o.market.mid == mid and o.order_id >= start]
        return web.json_response(orders[:limit])

    async def my_trades(self, request: web.Request, params: dict[str, str]) -> web.Response:
        mid = self._symbol(params)
        trades = [t for t in self.sim.matcher.trades if t["symbol"] == mid]
        if "startTime" in params:
            trades = [t for t in trades if t["time"] >= int_param(params, "startTime", 0)]
        if "fromId" in params:
            trades = [t for t in trades if t["id"] >= int_param(params, "fromId", 0)]
        return web.json_response(trades[:int_param(params, "limit", 500, 1, 1000)])

    async def listen_key_create(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return web.json_response({"listenKey": self.sim.user_streams.listen_key})

    async def listen_key_keep(self, request: web.Request, params: dict[str, str]) -> web.Response:
        if request.method == "PUT" and "listenKey" not in params:
            raise mandatory("listenKey")
        return web.json_response({})
