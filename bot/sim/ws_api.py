"""Binance's WebSocket API (``/ws-api/v3``): one request, one reply, each with ``rateLimits``.

Served: ``ping``, ``time``, ``exchangeInfo``, ``avgPrice``, ``ticker.price``,
``session.logon`` / ``session.status`` / ``session.logout``, ``userDataStream.subscribe``
(after logon), ``userDataStream.subscribe.signature``, ``userDataStream.unsubscribe``,
``userDataStream.start`` / ``.ping`` / ``.stop`` (listenKey), ``order.place``,
``order.test``, ``order.status``, ``order.cancel``, ``openOrders.status``,
``account.status``. Signed requests carry ``apiKey``, ``timestamp`` and ``signature``
(HMAC-SHA256 over the sorted, url-encoded parameters) unless the session is logged on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from bot.sim.errors import OrderError, mandatory
from bot.sim.filters import fmt
from bot.sim.limits import rate_limits_info
from bot.sim.orders import parse_order
from bot.sim.venue import Venue

if TYPE_CHECKING:
    from aiohttp import web

_WEIGHTS = {"order.place": 1, "order.test": 1, "order.status": 4, "order.cancel": 1,
            "openOrders.status": 6, "account.status": 20, "exchangeInfo": 20}
_SIGNED = ("order.place", "order.test", "order.status", "order.cancel", "openOrders.status",
           "account.status", "userDataStream.subscribe.signature")


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    return str(value)


class WsApiSession:
    """One ``/ws-api/v3`` connection."""

    def __init__(self, sim: Venue, ws: web.WebSocketResponse) -> None:
        self.sim = sim
        self.ws = ws
        self.logged_on = False

    def handle(self, text: str) -> dict:
        try:
            req = json.loads(text)
            method, req_id = req["method"], req.get("id")
            params = req.get("params") or {}
            if not isinstance(method, str) or not isinstance(params, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return self._reply(None, error=OrderError(-1000, "Malformed request."))
        is_order = method == "order.place"
        try:
            self.sim.rate_limiter.charge(_WEIGHTS.get(method, 1), is_order)
            handler = getattr(self, "m_" + method.replace(".", "_"), None)
            if handler is None:
                raise OrderError(-1000, f"Unknown method '{method}'.")
            params = {k: _text(v) for k, v in params.items()}
            if method in _SIGNED:
                self._authorise(params)
            self.sim.check_stops()
            return self._reply(req_id, result=handler(params))
        except OrderError as exc:
            return self._reply(req_id, error=exc)

    def _reply(self, req_id: Any, result: Any = None, error: OrderError | None = None) -> dict:
        limiter = self.sim.rate_limiter
        limits = [dict(x, count=limiter.weight.used if x["rateLimitType"] == "REQUEST_WEIGHT"
                       else limiter.orders_10s.used if x["interval"] == "SECOND"
                       else limiter.orders_day.used)
                  for x in rate_limits_info(self.sim.settings.rate_limits)]
        out: dict = {"id": req_id, "status": 200 if error is None else error.status}
        if error is None:
            out["result"] = result
        else:
            out["error"] = error.body()
        out["rateLimits"] = limits
        return out

    def _verify(self, params: dict[str, str]) -> None:
        if params.get("apiKey") != self.sim.settings.api_key:
            raise OrderError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        given = params.get("signature", "")
        query = urlencode(sorted((k, v) for k, v in params.items() if k != "signature"))
        secret = self.sim.settings.api_secret.encode()
        expected = hmac.new(secret, query.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, given):
            raise OrderError(-1022, "Signature for this request is not valid.")
        if "timestamp" not in params:
            raise mandatory("timestamp")

    def _authorise(self, params: dict[str, str]) -> None:
        if self.logged_on and "signature" not in params:
            return
        self._verify(params)

    # -- session and streams ------------------------------------------------------------

    def m_ping(self, params: dict[str, str]) -> dict:
        return {}

    def m_time(self, params: dict[str, str]) -> dict:
        return {"serverTime": self.sim.now_ms()}

    def m_exchangeInfo(self, params: dict[str, str]) -> dict:  # noqa: N802 - Binance's name
        return self.sim.exchange_info()

    def m_avgPrice(self, params: dict[str, str]) -> dict:  # noqa: N802
        mid = self._mid(params)
        return {"mins": 5, "price": fmt(self.sim.data.avg_price(mid)),
                "closeTime": self.sim.now_ms()}

    def m_ticker_price(self, params: dict[str, str]) -> dict:
        mid = self._mid(params)
        return {"symbol": mid, "price": fmt(self.sim.price(mid) or 0.0)}

    def m_session_logon(self, params: dict[str, str]) -> dict:
        self._verify(params)
        self.logged_on = True
        return self.m_session_status(params)

    def m_session_status(self, params: dict[str, str]) -> dict:
        now = self.sim.now_ms()
        return {"apiKey": self.sim.settings.api_key if self.logged_on else None,
                "authorizedSince": now if self.logged_on else None, "connectedSince": now,
                "returnRateLimits": True, "serverTime": now, "userDataStream": self._subscribed}

    def m_session_logout(self, params: dict[str, str]) -> dict:
        self.logged_on = False
        return self.m_session_status(params)

    @property
    def _subscribed(self) -> bool:
        return self.ws in self.sim.user_streams.subscribers

    def m_userDataStream_subscribe(self, params: dict[str, str]) -> dict:  # noqa: N802
        if not self.logged_on:
            raise OrderError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return {"subscriptionId": self.sim.user_streams.subscribe(self.ws)}

    def m_userDataStream_subscribe_signature(self, params: dict[str, str]) -> dict:  # noqa: N802
        return {"subscriptionId": self.sim.user_streams.subscribe(self.ws)}

    def m_userDataStream_unsubscribe(self, params: dict[str, str]) -> dict:  # noqa: N802
        self.sim.user_streams.subscribers.pop(self.ws, None)
        return {}

    def m_userDataStream_start(self, params: dict[str, str]) -> dict:  # noqa: N802
        if params.get("apiKey") != self.sim.settings.api_key:
            raise OrderError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return {"listenKey": self.sim.user_streams.listen_key}

    def m_userDataStream_ping(self, params: dict[str, str]) -> dict:  # noqa: N802
        if params.get("listenKey") != self.sim.user_streams.listen_key:
            raise OrderError(-1125, "This listenKey does not exist.")
        return {}

    m_userDataStream_stop = m_userDataStream_ping  # noqa: N815

    # -- trading ------------------------------------------------------------------------

    def _mid(self, params: dict[str, str]) -> str:
        if not params.get("symbol"):
            raise mandatory("symbol")
        mid = params["symbol"].upper()
        if mid not in self.sim.markets:
            raise OrderError(-1121, "Invalid symbol.")
        return mid

    def m_order_place(self, params: dict[str, str]) -> dict:
        req = parse_order(params)
        return self.sim.matcher.place(req).response(req.resp_type)

    def m_order_test(self, params: dict[str, str]) -> dict:
        self.sim.matcher.validate(parse_order(params))
        return {}

    def _ref(self, params: dict[str, str]) -> tuple[str, int | None, str | None]:
        oid = params.get("orderId")
        if oid is not None and not oid.isdigit():
            raise OrderError(-1100, "Illegal characters found in parameter 'orderId'.")
        return self._mid(params), int(oid) if oid else None, params.get("origClientOrderId")

    def m_order_status(self, params: dict[str, str]) -> dict:
        return self.sim.matcher.find(*self._ref(params)).as_binance()

    def m_order_cancel(self, params: dict[str, str]) -> dict:
        ref = self._ref(params)
        order = self.sim.matcher.cancel(*ref)
        cancel_id = params.get("newClientOrderId") or f"sim-cancel-{order.order_id}"
        return order.canceled(cancel_id, self.sim.now_ms())

    def m_openOrders_status(self, params: dict[str, str]) -> list:  # noqa: N802
        mid = self._mid(params) if "symbol" in params else None
        return [o.as_binance() for o in self.sim.matcher.open_orders(mid)]

    def m_account_status(self, params: dict[str, str]) -> dict:
        return self.sim.account()
