"""Websocket streams and the WebSocket API of the loopback exchange: every served stream
pushes, refused ones are answered with an error, and the official connector's websocket
clients and ccxt.pro work against it."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from binance.spot import Spot
from binance.websocket.spot.websocket_api import SpotWebsocketAPIClient
from binance.websocket.spot.websocket_stream import SpotWebsocketStreamClient

from bot.sim import SimExchange, make_ccxt_binance
from tests.sim.test_sim_exchange_orders import SYM, call, sim_settings

SERVED = ["btcusdt@aggTrade", "btcusdt@trade", "btcusdt@ticker", "btcusdt@miniTicker",
          "btcusdt@depth5", "btcusdt@depth20@100ms", "btcusdt@avgPrice", "!ticker@arr",
          "btcusdt@kline_4h", "btcusdt@kline_2h", "btcusdt@bookTicker", "btcusdt@depth",
          "btcusdt@depth@100ms", "btcusdt@ticker_1h"]


async def next_reply(ws: aiohttp.ClientWebSocketResponse, req_id: int, limit_s: float = 5.0) -> dict:
    """The reply to request ``req_id`` (stream pushes in between are skipped)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        msg = json.loads((await ws.receive(timeout=limit_s)).data)
        if isinstance(msg, dict) and msg.get("id") == req_id:
            return msg
    raise AssertionError(f"no reply to {req_id}")


async def test_every_served_stream_pushes_and_keeps_its_name(data_dir: Path) -> None:
    async with SimExchange(sim_settings(data_dir, speed=600.0, kline_updates=3)) as sim, \
            aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{sim.ws_url}/stream") as ws:
            await ws.send_json({"method": "SUBSCRIBE", "params": SERVED, "id": 1})
            assert (await next_reply(ws, 1))["result"] is None
            seen: dict[str, list[float]] = {}
            deadline = time.monotonic() + 12.0
            while time.monotonic() < deadline and (set(SERVED) - set(seen)
                                                    or len(seen.get("btcusdt@depth", [])) < 3):
                msg = json.loads((await ws.receive(timeout=12.0)).data)
                if "stream" in msg:
                    seen.setdefault(msg["stream"], []).append(time.monotonic())
            assert set(seen) == set(SERVED)
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 2})
            assert sorted((await next_reply(ws, 2))["result"]) == sorted(SERVED)
        gaps = [b - a for a, b in zip(seen["btcusdt@depth"], seen["btcusdt@depth"][1:])]
        assert all(0.7 < g < 1.5 for g in gaps), gaps  # @depth: every 1000 ms, like Binance


async def test_refused_requests_are_answered_and_the_socket_kept(data_dir: Path) -> None:
    async with SimExchange(sim_settings(data_dir)) as sim, aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{sim.ws_url}/ws") as ws:
            bad = [({"method": "SUBSCRIBE", "params": [1, None, {}], "id": 1}, 1),
                   ({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 2}, 2),
                   ({"method": "SUBSCRIBE", "params": ["btcusdt@nonsense"], "id": 3}, 3),
                   ({"method": "SUBSCRIBE", "params": ["xxxusdt@trade"], "id": 4}, 4),
                   ({"method": "FROB", "id": 5}, 5)]
            for request, req_id in bad:
                await ws.send_json(request)
                reply = await next_reply(ws, req_id)
                assert reply["error"]["code"] == 2, reply
            assert "1h" in (await _subscribe(ws, "btcusdt@kline_1m", 6))["error"]["msg"]
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 7})
            assert (await next_reply(ws, 7))["result"] == []  # still open, nothing subscribed


async def _subscribe(ws: aiohttp.ClientWebSocketResponse, stream: str, req_id: int) -> dict:
    await ws.send_json({"method": "SUBSCRIBE", "params": [stream], "id": req_id})
    return await next_reply(ws, req_id)


async def test_ccxt_pro_syncs_the_recentred_book_exactly(data_dir: Path) -> None:
    async with SimExchange(sim_settings(data_dir, speed=300.0)) as sim:
        ex = make_ccxt_binance(sim.http_url, sim.ws_url)
        try:
            matched = 0
            for _ in range(40):
                book = await ex.watch_order_book("BTC/USDT")
                published = sim.books.book(SYM)
                if book["nonce"] == published.update_id:
                    bids, asks = published.top(20)
                    assert [tuple(x) for x in book["bids"][:20]] == bids
                    assert [tuple(x) for x in book["asks"][:20]] == asks
                    matched += 1
                    if matched >= 3:
                        break
            assert matched >= 3
            assert book["bids"][0][0] < 10_000  # the 2020 candle price, not the 2024 recording
        finally:
            await ex.close()


async def test_official_connector_websocket_clients(data_dir: Path) -> None:
    async with SimExchange(sim_settings(data_dir, speed=60.0)) as sim:
        got: list[dict] = []
        # the connector's clients connect in their constructors (blocking): off the loop
        api = await asyncio.to_thread(
            SpotWebsocketAPIClient, stream_url=f"{sim.ws_url}/ws-api/v3", api_key="sim-key",
            api_secret="sim-secret", on_message=lambda _, m: got.append(json.loads(m)))
        pushed: list[dict] = []
        stream = await asyncio.to_thread(
            SpotWebsocketStreamClient, stream_url=sim.ws_url,
            on_message=lambda _, m: pushed.append(json.loads(m)))
        try:
            await asyncio.to_thread(api.user_data_start, id="start")
            key = await _wait_for(lambda: next((m["result"]["listenKey"] for m in got
                                                if m.get("id") == "start"), None))
            await asyncio.to_thread(stream.user_data, listen_key=key, id=1)
            await asyncio.to_thread(stream.agg_trade, symbol="btcusdt", id=2)
            await _wait_for(lambda: sim.hub.has_listeners(key) or None)
            await asyncio.to_thread(api.new_order, id="place", symbol=SYM, side="BUY",
                                    type="MARKET", quantity=0.001)
            await asyncio.to_thread(api.account, id="acct")
            placed = await _wait_for(lambda: next((m for m in got if m.get("id") == "place"), None))
            assert placed["status"] == 200 and placed["result"]["status"] == "FILLED"
            assert placed["rateLimits"][0]["rateLimitType"] == "REQUEST_WEIGHT"
            acct = await _wait_for(lambda: next((m for m in got if m.get("id") == "acct"), None))
            btc = next(b for b in acct["result"]["balances"] if b["asset"] == "BTC")
            assert float(btc["free"]) > 0
            report = await _wait_for(lambda: next((m for m in pushed
                                                   if m.get("e") == "executionReport"), None))
            assert report["X"] in ("NEW", "FILLED") and report["s"] == SYM
            await _wait_for(lambda: next((m for m in pushed if m.get("e") == "aggTrade"), None))
            listen = await call(Spot(api_key="sim-key", base_url=sim.http_url).new_listen_key)
            assert listen["listenKey"] == key
        finally:
            await asyncio.to_thread(api.stop)
            await asyncio.to_thread(stream.stop)


async def test_websocket_api_session_logon(data_dir: Path) -> None:
    async with SimExchange(sim_settings(data_dir)) as sim, aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{sim.ws_url}/ws-api/v3") as ws:
            await ws.send_str("not json")
            assert (await ws.receive_json(timeout=5))["status"] == 400
            await ws.send_json({"id": 1, "method": "account.status", "params": {}})
            assert (await next_reply(ws, 1))["error"]["code"] == -2015
            params = {"apiKey": "sim-key", "timestamp": sim.now_ms()}
            query = urlencode(sorted((k, str(v)) for k, v in params.items()))
            params["signature"] = hmac.new(b"sim-secret", query.encode(), hashlib.sha256).hexdigest()
            await ws.send_json({"id": 2, "method": "session.logon", "params": params})
            logon = await next_reply(ws, 2)
            assert logon["status"] == 200 and logon["result"]["apiKey"] == "sim-key"
            await ws.send_json({"id": 3, "method": "account.status", "params": {}})
            status = await next_reply(ws, 3)
            assert status["status"] == 200 and status["rateLimits"]
            await ws.send_json({"id": 4, "method": "userDataStream.subscribe"})
            assert "subscriptionId" in (await next_reply(ws, 4))["result"]
            await ws.send_json({"id": 5, "method": "order.place", "params": {
                "symbol": SYM, "side": "BUY", "type": "MARKET", "quantity": "0.001"}})
            assert (await next_reply(ws, 5))["result"]["status"] == "FILLED"


async def _wait_for(probe: Any, limit_s: float = 10.0) -> Any:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")
