"""The websocket API (``/ws-api/v3``) part ccxt's ``watch_orders``/``watch_my_trades`` need.

``userDataStream.subscribe.signature`` subscribes the connection to the account's
events; every order change is then pushed as an ``executionReport`` and every balance
change as ``outboundAccountPosition``, wrapped as ``{"subscriptionId": n, "event": {...}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
from typing import TYPE_CHECKING

import structlog
from aiohttp import WSMsgType, web

from bot.exchange_sim.filters import fmt
from bot.exchange_sim.orders import SimOrder

if TYPE_CHECKING:
    from bot.exchange_sim.server import SimExchange

log = structlog.get_logger(__name__)


def execution_report(order: SimOrder, trade: dict | None, event_ms: int) -> dict:
    last_qty = trade["qty"] if trade else "0.00000000"
    last_price = trade["price"] if trade else "0.00000000"
    if trade is not None:
        exec_type = "TRADE"
    elif order.status == "NEW":
        exec_type = "NEW"
    else:
        exec_type = {"CANCELED": "CANCELED", "EXPIRED": "EXPIRED"}.get(order.status, "NEW")
    return {
        "e": "executionReport", "E": event_ms, "s": order.market.mid, "c": order.client_id,
        "S": order.side, "o": order.type, "f": order.time_in_force, "q": fmt(order.qty),
        "p": fmt(order.price), "P": fmt(order.stop_price), "F": "0.00000000", "g": -1, "C": "", "x": exec_type,
        "X": order.status, "r": "NONE", "i": order.order_id, "l": last_qty,
        "z": fmt(order.executed), "L": last_price,
        "n": trade["commission"] if trade else "0.00000000", "N": trade["commissionAsset"] if trade else None,
        "T": order.updated or order.created, "t": trade["id"] if trade else -1, "I": 0,
        "w": order.status in ("NEW", "PARTIALLY_FILLED") and order.working, "m": bool(trade and trade["isMaker"]),
        "M": False, "O": order.created, "Z": fmt(order.quote_executed),
        "Y": fmt(float(last_qty) * float(last_price)), "Q": fmt(order.quote_qty), "W": order.created,
        "V": "NONE",
    }


class UserStreams:
    def __init__(self, sim: SimExchange) -> None:
        self.sim = sim
        self.subscribers: dict[web.WebSocketResponse, int] = {}
        self._next_id = 0
        sim.matcher.listeners.append(self.on_order)

    def on_order(self, order: SimOrder, trade: dict | None) -> None:
        if not self.subscribers:
            return
        now = self.sim.now_ms()
        events = [execution_report(order, trade, now)]
        if trade is not None or order.status in ("CANCELED", "EXPIRED"):
            m = order.market
            balances = [b for b in self.sim.matcher.balances() if b["asset"] in (m.base, m.quote)]
            events.append({"e": "outboundAccountPosition", "E": now, "u": now,
                           "B": [{"a": b["asset"], "f": b["free"], "l": b["locked"]}
                                 for b in balances]})
        for ws, sub_id in list(self.subscribers.items()):
            for event in events:
                text = json.dumps({"subscriptionId": sub_id, "event": event})
                asyncio.ensure_future(self._send(ws, text))

    async def _send(self, ws: web.WebSocketResponse, text: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(text)

    def _verify(self, params: dict) -> bool:
        given = str(params.get("signature", ""))
        if params.get("apiKey") != self.sim.settings.api_key:
            return False
        rest = {k: v for k, v in sorted(params.items()) if k != "signature"}
        query = "&".join(f"{k}={v}" for k, v in rest.items())
        secret = self.sim.settings.api_secret.encode()
        expected = hmac.new(secret, query.encode(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, given)

    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._handle(ws, msg.data)
        finally:
            self.subscribers.pop(ws, None)
        return ws

    async def _handle(self, ws: web.WebSocketResponse, text: str) -> None:
        try:
            req = json.loads(text)
            method, req_id = req["method"], req.get("id")
        except (ValueError, KeyError, TypeError):
            await ws.send_json({"status": 400, "error": {"code": -1000, "msg": "bad request"}})
            return
        params = req.get("params") or {}
        if method == "ping":
            await ws.send_json({"id": req_id, "status": 200, "result": {}})
        elif method == "time":
            await ws.send_json({"id": req_id, "status": 200,
                                "result": {"serverTime": self.sim.now_ms()}})
        elif method == "userDataStream.subscribe.signature":
            if not self._verify(params):
                await ws.send_json({"id": req_id, "status": 400, "error": {
                    "code": -1022, "msg": "Signature for this request is not valid."}})
                return
            sub_id = self._next_id
            self._next_id += 1
            self.subscribers[ws] = sub_id
            await ws.send_json({"id": req_id, "status": 200, "result": {"subscriptionId": sub_id}})
        elif method == "userDataStream.unsubscribe":
            self.subscribers.pop(ws, None)
            await ws.send_json({"id": req_id, "status": 200, "result": {}})
        else:
            await ws.send_json({"id": req_id, "status": 400, "error": {
                "code": -1100, "msg": f"unsupported method {method}"}})
