"""Market data, numbers and limits of the loopback exchange, checked by third-party clients:
the official Binance connector, plain sync ``ccxt.binance`` and ccxt's own structure
validators (``ccxt/test``)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import aiohttp
import ccxt
import numpy as np
import pytest
from binance.error import ClientError

from bot.sim import SimExchange, configure_ccxt
from bot.sim.recordings import load_candle_series
from bot.sim.settings import RateLimitSettings
from tests.sim.test_sim_exchange_orders import START, SYM, call, connector, refused, sim_settings

FIXED8 = re.compile(r"^-?\d+\.\d{8}$")
HOUR = 3_600_000


def sync_ccxt(sim: SimExchange) -> Any:
    ex = ccxt.binance({"apiKey": "sim-key", "secret": "sim-secret", "enableRateLimit": False})
    return configure_ccxt(ex, sim.http_url, sim.ws_url)


def numbers(obj: Any) -> list[str]:
    """Every decimal-looking string in a JSON answer."""
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in numbers(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in numbers(v)]
    return [obj] if isinstance(obj, str) and re.match(r"^-?[\d.e+-]+$", obj) and "." in obj else []


async def test_one_price_and_clock_everywhere_by_default(data_dir: Path) -> None:
    async with connector(data_dir, speed=60.0) as (sim, client):
        last = float((await call(client.ticker_price, SYM))["price"])
        candle = float((await call(client.klines, SYM, "1h", limit=1))[0][4])
        book = await call(client.depth, SYM, limit=5)
        mid = (float(book["bids"][0][0]) + float(book["asks"][0][0])) / 2
        fill = await call(client.new_order, SYM, "BUY", "MARKET", quantity="0.01")
        avg = float(fill["cummulativeQuoteQty"]) / float(fill["executedQty"])
        for other in (candle, mid, avg):
            assert other == pytest.approx(last, rel=2e-3)  # 2020 prices, not the 2024 recording
        trades = await call(client.trades, SYM, limit=5)
        server = (await call(client.time))["serverTime"]
        assert all(abs(t["time"] - server) < 2 * HOUR for t in trades)
    # the raw recording stays available, explicitly
    async with connector(data_dir, matching_book="recorded") as (sim, client):
        book = await call(client.depth, SYM, limit=5)
        assert float(book["bids"][0][0]) > 50_000  # 2024-08-08


async def test_numbers_are_fixed_8_decimal_strings(data_dir: Path) -> None:
    async with connector(data_dir) as (sim, client):
        await call(client.new_order, SYM, "BUY", "MARKET", quantity="0.00123")
        answers = [await call(client.depth, SYM, limit=20), await call(client.ticker_24hr, SYM),
                   await call(client.account), await call(client.my_trades, SYM),
                   await call(client.klines, SYM, "1h", limit=3), await call(client.book_ticker, SYM),
                   await call(client.get_orders, SYM), await call(client.trades, SYM, limit=3)]
        found = [x for answer in answers for x in numbers(answer)
                 if x not in (answers[1]["priceChangePercent"],)]
        assert len(found) > 100 and all(FIXED8.match(x) for x in found), \
            [x for x in found if not FIXED8.match(x)][:5]


async def test_ticker_and_klines_carry_the_replayed_statistics(data_dir: Path) -> None:
    async with connector(data_dir, speed=600.0) as (sim, client):
        t = await call(client.ticker_24hr, SYM)
        assert t["count"] > 0 and float(t["bidQty"]) > 0 and float(t["askQty"]) > 0
        assert float(t["lastQty"]) > 0 and t["lastId"] - t["firstId"] + 1 == t["count"]
        assert float(t["lowPrice"]) <= float(t["weightedAvgPrice"]) <= float(t["highPrice"])
        assert float(t["weightedAvgPrice"]) != float(t["lastPrice"])
        (row,) = await call(client.klines, SYM, "1h", startTime=START - HOUR, limit=1)  # closed
        assert row[8] > 0 and 0 < float(row[9]) < float(row[5])  # trades, taker-buy volume
        rolling = await call(client.rolling_window_ticker, SYM, windowSize="4h")
        assert rolling["openTime"] == rolling["closeTime"] - 4 * HOUR and rolling["count"] > 0


async def test_klines_of_every_interval_are_built_from_the_candles(data_dir: Path) -> None:
    async with connector(data_dir, start_ms=START + 500 * HOUR) as (sim, client):
        got = await call(client.klines, SYM, "4h", startTime=START, limit=6)
        hourly = load_candle_series(data_dir, "binance", ("BTC/USDT",), ("1h",))[("BTC/USDT", "1h")]
        i = hourly.index_at_or_after(START)
        rows = hourly.ohlcv[i:i + 4]
        assert got[0][0] == START and got[0][6] == START + 4 * HOUR - 1
        assert [float(x) for x in got[0][1:6]] == pytest.approx(
            [rows[0, 0], rows[:, 1].max(), rows[:, 2].min(), rows[3, 3], rows[:, 4].sum()])
        week = await call(client.klines, SYM, "1w", limit=2)
        assert np.datetime64(week[-1][0], "ms").astype(object).weekday() == 0  # Monday
        err = await refused(client.klines, SYM, "1m")
        assert err.error_code == -1120 and "1h" in err.error_message


async def test_spot_endpoints_a_bot_uses_are_served(data_dir: Path) -> None:
    async with connector(data_dir, speed=60.0) as (sim, client):
        avg = await call(client.avg_price, SYM)
        assert avg["mins"] == 5 and FIXED8.match(avg["price"])
        agg = await call(client.agg_trades, SYM, limit=10)
        assert len(agg) == 10 and [a["a"] for a in agg] == sorted(a["a"] for a in agg)
        later = await call(client.agg_trades, SYM, fromId=agg[0]["a"], limit=3)
        assert [a["a"] for a in later] == [a["a"] for a in agg[:3]]
        fees = await call(client.sign_request, "GET", "/api/v3/account/commission", {"symbol": SYM})
        assert fees["standardCommission"]["taker"] == "0.00100000"
        key = (await call(client.new_listen_key))["listenKey"]
        assert await call(client.renew_listen_key, key) == {}
        assert await call(client.close_listen_key, key) == {}
        ex = sync_ccxt(sim)
        trades = await call(ex.fetch_trades, "BTC/USDT", limit=5)  # ccxt's default: aggTrades
        assert len(trades) == 5 and trades[-1]["price"] > 0


async def test_ccxt_structure_validators_accept_the_answers(data_dir: Path) -> None:
    pytest.importorskip("ccxt.test.exchange.base")
    from ccxt.test.exchange.base import (
        test_balance, test_ohlcv, test_order, test_order_book, test_ticker, test_trade,
    )

    async with SimExchange(sim_settings(data_dir, speed=60.0)) as sim:
        ex = sync_ccxt(sim)
        skip: dict = {}
        symbol = "BTC/USDT"

        def check() -> None:
            ex.load_markets()
            test_ticker(ex, skip, "fetchTicker", ex.fetch_ticker(symbol), symbol)
            no_stamp = {"timestamp": True, "datetime": True}  # Binance's spot depth has none
            test_order_book(ex, no_stamp, "fetchOrderBook", ex.fetch_order_book(symbol, 50), symbol)
            for bar in ex.fetch_ohlcv(symbol, "1h", limit=20):
                test_ohlcv(ex, skip, "fetchOHLCV", bar, symbol, ex.milliseconds())
            for trade in ex.fetch_trades(symbol, limit=20):
                test_trade(ex, skip, "fetchTrades", trade, symbol, ex.milliseconds(), True)
            placed = ex.create_order(symbol, "market", "buy", 0.002)
            test_order(ex, skip, "createOrder", placed, symbol, ex.milliseconds())
            for trade in ex.fetch_my_trades(symbol):
                test_trade(ex, skip, "fetchMyTrades", trade, symbol, ex.milliseconds(), False)
            for order in ex.fetch_orders(symbol):
                test_order(ex, skip, "fetchOrders", order, symbol, ex.milliseconds())
            test_balance(ex, skip, "fetchBalance", ex.fetch_balance())

        await asyncio.to_thread(check)


async def test_request_weight_and_order_limits(data_dir: Path) -> None:
    limits = RateLimitSettings(request_weight_per_minute=60, orders_per_10s=3, ban_after=3,
                               ban_s=60.0)
    async with SimExchange(sim_settings(data_dir, rate_limits=limits)) as sim, \
            aiohttp.ClientSession() as http:
        api = f"{sim.http_url}/api/v3"
        async with http.get(f"{api}/exchangeInfo") as resp:
            listed = (await resp.json())["rateLimits"]
            assert int(resp.headers["X-MBX-USED-WEIGHT-1M"]) == 20
        assert {(x["rateLimitType"], x["interval"], x["limit"]) for x in listed} >= {
            ("REQUEST_WEIGHT", "MINUTE", 60), ("ORDERS", "SECOND", 3)}
        async with http.get(f"{api}/depth?symbol={SYM}") as resp:  # weight 5
            assert resp.status == 200 and resp.headers["X-MBX-USED-WEIGHT-1M"] == "25"
        statuses = []
        for _ in range(12):
            async with http.get(f"{api}/depth?symbol={SYM}") as resp:
                statuses.append(resp.status)
                if resp.status == 429:
                    body = await resp.json()
                    assert body["code"] == -1003 and int(resp.headers["Retry-After"]) >= 1
        assert statuses[:7] == [200] * 7 and statuses[7] == 429  # 60 weight spent
        assert statuses[-1] == 418  # kept going after being told to back off
    async with connector(data_dir, rate_limits=RateLimitSettings(orders_per_10s=2)) as (sim, c):
        for _ in range(2):
            await call(c.new_order, SYM, "BUY", "MARKET", quantity="0.001")
        err: ClientError = await refused(c.new_order, SYM, "BUY", "MARKET", quantity="0.001")
        assert (err.status_code, err.error_code) == (429, -1015)
        assert err.header["X-MBX-ORDER-COUNT-10S"] == "3"
