"""The account's event streams: ``executionReport`` for every order change and
``outboundAccountPosition`` for every balance change.

Two ways in, like Binance: the websocket API (``/ws-api/v3``: ``userDataStream.subscribe``
after ``session.logon``, or ``userDataStream.subscribe.signature``) wraps each event as
``{"subscriptionId": n, "event": {...}}``; a listenKey (``POST /api/v3/userDataStream`` or
``userDataStream.start``) subscribed as a stream name on ``/ws`` gets the bare events.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import structlog
from aiohttp import WSMsgType, web

from bot.sim.filters import fmt
from bot.sim.orders import SimOrder
from bot.sim.ws_api import WsApiSession
from bot.sim.venue import Venue

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
    """Who gets the account's events: websocket-API subscriptions and listenKey streams."""

    def __init__(self, sim: Venue) -> None:
        self.sim = sim
        self.subscribers: dict[web.WebSocketResponse, int] = {}
        self.listen_key = hashlib.sha256(f"listen-{sim.settings.api_key}".encode()).hexdigest()[:60]
        self._next_id = 0
        sim.matcher.listeners.append(self.on_order)

    def subscribe(self, ws: web.WebSocketResponse) -> int:
        sub_id = self._next_id
        self._next_id += 1
        self.subscribers[ws] = sub_id
        return sub_id

    def on_order(self, order: SimOrder, trade: dict | None) -> None:
        listen = self.sim.hub.has_listeners(self.listen_key)
        if not self.subscribers and not listen:
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
        if listen:
            for event in events:
                self.sim.hub.publish_obj(self.listen_key, event)

    async def _send(self, ws: web.WebSocketResponse, text: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(text)

    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        session = WsApiSession(self.sim, ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await ws.send_str(json.dumps(session.handle(msg.data)))
        finally:
            self.subscribers.pop(ws, None)
        return ws
