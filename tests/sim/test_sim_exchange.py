"""The loopback exchange through the real ccxt (pro) binance client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import ccxt.pro as ccxtpro
import pytest

from bot.marketdata.candle_csv import load_candles_csv
from bot.sim import FaultSettings, SimExchange, SimSettings, make_ccxt_binance
from bot.sim.testing import reference_books

START = 1_577_836_800_000  # 2020-01-01
HOUR = 3_600_000


def settings(data_dir: Path, **kw: object) -> SimSettings:
    base: dict[str, object] = dict(data_dir=data_dir, speed=HOUR / 1000, start_ms=START,
                                   symbols=("BTC/USDT", "ETH/USDT"), timeframes=("1h",))
    base.update(kw)
    return SimSettings(**base)  # type: ignore[arg-type]


async def test_public_rest_matches_the_data(data_dir: Path) -> None:
    async with SimExchange(settings(data_dir, start_ms=START + 600 * HOUR)) as sim:
        ex = make_ccxt_binance(sim.http_url, sim.ws_url)
        try:
            markets = await ex.load_markets()
            assert {"BTC/USDT", "ETH/USDT"} <= set(markets)
            assert markets["BTC/USDT"]["spot"] and markets["BTC/USDT"]["active"]
            server = await ex.fetch_time()
            assert server >= START + 600 * HOUR
            rows = await ex.fetch_ohlcv("BTC/USDT", "1h", since=START, limit=500)
            want = load_candles_csv(data_dir / "ohlcv/binance/BTC_USDT-1h.csv.gz",
                                    since_ms=START, until_ms=START + 500 * HOUR)
            assert [r[0] for r in rows] == [c.ts for c in want]
            assert rows[10][1:] == [want[10].open, want[10].high, want[10].low, want[10].close,
                                    want[10].volume]
            book = await ex.fetch_order_book("BTC/USDT", limit=100)
            assert book["bids"][0][0] < book["asks"][0][0]
            ticker = await ex.fetch_ticker("ETH/USDT")
            assert ticker["last"] > 0
        finally:
            await ex.close()


async def test_signed_endpoints_orders_fees_balances(data_dir: Path) -> None:
    async with SimExchange(settings(data_dir, book_speed=1.0)) as sim:
        ex = make_ccxt_binance(sim.http_url, sim.ws_url, api_key="sim-key", secret="sim-secret")
        bad = make_ccxt_binance(sim.http_url, sim.ws_url, api_key="sim-key", secret="wrong")
        try:
            with pytest.raises(ccxtpro.AuthenticationError):
                await bad.fetch_balance()
            bal = await ex.fetch_balance()
            assert bal["USDT"]["free"] == 100_000.0
            bids, asks = sim.book_levels("BTCUSDT", 1)
            order = await ex.create_order("BTC/USDT", "market", "buy", 0.5)
            assert order["status"] == "closed" and order["filled"] == pytest.approx(0.5)
            assert order["average"] >= asks[0][0] * 0.99
            bal = await ex.fetch_balance()
            assert bal["BTC"]["free"] == pytest.approx(0.5 * (1 - 0.001))  # fee in BTC
            assert bal["USDT"]["free"] == pytest.approx(100_000.0 - order["cost"], rel=1e-9)
            trades = await ex.fetch_my_trades("BTC/USDT")
            assert len(trades) >= 1 and trades[0]["fee"]["currency"] == "BTC"
            # a limit far below the market rests, locks quote, and cancels cleanly
            px = float(ex.price_to_precision("BTC/USDT", bids[0][0] * 0.5))  # on the 0.01 tick
            limit = await ex.create_order("BTC/USDT", "limit", "buy", 0.1, px)
            assert limit["status"] == "open"
            assert [o["id"] for o in await ex.fetch_open_orders("BTC/USDT")] == [limit["id"]]
            assert (await ex.fetch_balance())["USDT"]["used"] == pytest.approx(0.1 * px)
            await ex.cancel_order(limit["id"], "BTC/USDT")
            assert (await ex.fetch_order(limit["id"], "BTC/USDT"))["status"] == "canceled"
            assert (await ex.fetch_balance())["USDT"]["used"] == 0.0
            with pytest.raises(ccxtpro.InsufficientFunds):
                await ex.create_order("BTC/USDT", "market", "sell", 10.0)
        finally:
            await ex.close()
            await bad.close()


async def test_order_times_out_after_being_placed(data_dir: Path) -> None:
    faults = FaultSettings(order_timeout_every_n=1, order_timeout_hang_s=5.0)
    async with SimExchange(settings(data_dir, faults=faults)) as sim:
        ex = make_ccxt_binance(sim.http_url, sim.ws_url, api_key="sim-key", secret="sim-secret",
                               timeout=300)
        try:
            with pytest.raises(ccxtpro.RequestTimeout):
                await ex.create_order("BTC/USDT", "market", "buy", 0.01,
                                      params={"clientOrderId": "intent-1"})
            # the order exists although the request timed out: a retry must look it up
            found = await ex.fetch_order(None, "BTC/USDT", params={"origClientOrderId": "intent-1"})
            assert found["status"] == "closed" and sim.counters.order_timeouts == 1
        finally:
            await ex.close()


async def test_429_and_5xx_are_answered(data_dir: Path) -> None:
    faults = FaultSettings(http_429_every_n=2, http_fault_paths=("/api/v3/klines",))
    async with SimExchange(settings(data_dir, faults=faults)) as sim:
        ex = make_ccxt_binance(sim.http_url, sim.ws_url)
        try:
            await ex.fetch_ohlcv("BTC/USDT", "1h", since=START, limit=5)
            with pytest.raises(ccxtpro.DDoSProtection):  # ccxt maps 429 to DDoSProtection
                await ex.fetch_ohlcv("BTC/USDT", "1h", since=START, limit=5)
            sim.set_faults(FaultSettings(http_5xx_every_n=1))
            with pytest.raises(ccxtpro.ExchangeNotAvailable):
                await ex.fetch_time()
        finally:
            await ex.close()


async def test_watch_streams_and_private_updates(data_dir: Path) -> None:
    # the raw recording, verbatim: the book ccxt syncs is the recorded one
    async with SimExchange(settings(data_dir, book_speed=5.0, kline_updates=2,
                                    matching_book="recorded")) as sim:
        ex = make_ccxt_binance(sim.http_url, sim.ws_url, api_key="sim-key", secret="sim-secret")
        try:
            candles = await ex.watch_ohlcv("BTC/USDT", "1h")
            assert candles[-1][0] % HOUR == 0
            trades = await ex.watch_trades("BTC/USDT")
            assert trades[-1]["price"] > 0
            ticker = await ex.watch_bids_asks(["BTC/USDT"])
            assert ticker["BTC/USDT"]["bid"] > 0
            book = await ex.watch_order_book("BTC/USDT")
            ref = reference_books(data_dir, "BTCUSDT", depth=10, upto=book["nonce"])
            assert book["nonce"] in ref
            bids, asks = ref[book["nonce"]]
            assert [tuple(x) for x in book["bids"][:10]] == list(bids)
            assert [tuple(x) for x in book["asks"][:10]] == list(asks)
            watcher = asyncio.ensure_future(ex.watch_orders("BTC/USDT"))
            await asyncio.sleep(0)  # let the subscription go out first
            for _ in range(50):
                if sim.user_streams.subscribers:
                    break
                await asyncio.sleep(0.02)
            placed = await ex.create_order("BTC/USDT", "market", "buy", 0.01)
            updates = await asyncio.wait_for(watcher, 10)
            assert updates[-1]["id"] == placed["id"]
        finally:
            await ex.close()
