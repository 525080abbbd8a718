"""Stop orders on the loopback exchange, through the real ccxt client (REST and user stream)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt
import pytest

from bot.sim import SimExchange, SimSettings, make_ccxt_binance
from bot.sim.recordings import load_candle_series

SYM = "BTC/USDT"
AFTER_MS = 1_600_000_000_000


def falling_hour(data_dir: Path, drop: float = 0.985, after_ms: int = AFTER_MS) -> int:
    """Open time of the first real 1h candle after ``after_ms`` that closed ``drop`` x its open."""
    series = load_candle_series(data_dir, "binance", (SYM,), ("1h",))[(SYM, "1h")]
    for i in range(series.index_at_or_after(after_ms), len(series.ts)):
        o, c = series.ohlcv[i, 0], series.ohlcv[i, 3]
        if c < o * drop:
            return int(series.ts[i])
    raise AssertionError("no falling hour in the data")


def stop_settings(data_dir: Path, start_ms: int, speed: float) -> SimSettings:
    return SimSettings(data_dir=data_dir, symbols=(SYM,), timeframes=("1h",), book_replay=False,
                       speed=speed, start_ms=start_ms)


async def wait_for(check: Any, limit_s: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy (the limit only guards a hang)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while True:
        got = await check()
        if got or loop.time() > deadline:
            return got
        await asyncio.sleep(0.05)


async def test_stop_loss_limit_rests_cancels_and_triggers_once_the_price_crosses(data_dir: Path) -> None:
    start = falling_hour(data_dir)
    async with SimExchange(stop_settings(data_dir, start, speed=1200.0)) as sim:
        ex = make_ccxt_binance(sim.http_url, sim.ws_url, api_key="sim-key", secret="sim-secret")
        ex.options["adjustForTimeDifference"] = False
        try:
            await ex.create_order(SYM, "market", "buy", 0.05)
            price = float((await ex.fetch_ticker(SYM))["last"])
            # far below: rests untriggered, locks its coins, shows in openOrders, cancels
            far = await ex.create_order(SYM, "limit", "sell", 0.02, round(price * 0.89, 2),
                                        {"stopPrice": round(price * 0.9, 2), "newClientOrderId": "far1"})
            (open_,) = await ex.fetch_open_orders(SYM)
            assert open_["id"] == far["id"] and open_["clientOrderId"] == "far1"
            assert open_["triggerPrice"] == pytest.approx(round(price * 0.9, 2))
            assert open_["info"]["type"] == "STOP_LOSS_LIMIT" and open_["info"]["isWorking"] is False
            assert (await ex.fetch_balance())["BTC"]["used"] == pytest.approx(0.02)
            canceled = await ex.cancel_order(far["id"], SYM)
            assert canceled["status"] == "canceled" and await ex.fetch_open_orders(SYM) == []
            assert (await ex.fetch_balance())["BTC"]["used"] == pytest.approx(0.0)
            # a sell stop at or above the price would trigger at once: rejected, like Binance
            with pytest.raises(ccxt.OrderImmediatelyFillable):
                await ex.create_order(SYM, "limit", "sell", 0.02, price, {"stopPrice": price * 1.01})
            # just below the price of a falling hour: it triggers, fills at or above its limit,
            # and the user stream reports it (NEW with its stop price, then the trade)
            watcher = asyncio.ensure_future(ex.watch_orders(SYM))
            await wait_for(lambda: asyncio.sleep(0, bool(sim.user_streams.subscribers)))
            price = float((await ex.fetch_ticker(SYM))["last"])
            stop, limit = round(price * 0.998, 2), round(price * 0.99, 2)
            near = await ex.create_order(SYM, "limit", "sell", 0.03, limit, {"stopPrice": stop})
            first = await asyncio.wait_for(watcher, 10)
            assert first[-1]["id"] == near["id"] and first[-1]["triggerPrice"] == pytest.approx(stop)

            async def closed() -> dict | None:
                order = await ex.fetch_order(near["id"], SYM)
                return order if order["status"] == "closed" else None

            done = await wait_for(closed)
            assert done is not None, "the stop never triggered although the price fell through it"
            assert done["filled"] == pytest.approx(0.03) and done["average"] >= limit
            (trade,) = [t for t in sim.matcher.trades if t["orderId"] == int(near["id"])]
            assert float(trade["price"]) <= stop  # it traded once the price was through the stop

            def streamed() -> bool:  # ccxt.pro's cache of what the user stream pushed
                return any(o["id"] == near["id"] and o["filled"] > 0 for o in ex.orders or [])

            assert await wait_for(lambda: asyncio.sleep(0, streamed()), 10)
        finally:
            await ex.close()


async def test_stop_loss_triggers_as_a_market_order(data_dir: Path) -> None:
    start = falling_hour(data_dir)
    async with SimExchange(stop_settings(data_dir, start, speed=1200.0)) as sim:
        ex = make_ccxt_binance(sim.http_url, api_key="sim-key", secret="sim-secret", pro=False)
        ex.options["adjustForTimeDifference"] = False
        try:
            await ex.create_order(SYM, "market", "buy", 0.02)
            price = float((await ex.fetch_ticker(SYM))["last"])
            placed = await ex.create_order(SYM, "market", "sell", 0.019, None,
                                           {"stopPrice": round(price * 0.998, 2)})
            assert placed["info"]["type"] == "STOP_LOSS" and placed["status"] == "open"

            async def closed() -> bool:
                return (await ex.fetch_order(placed["id"], SYM))["status"] == "closed"

            assert await wait_for(closed), "the stop never triggered"
        finally:
            await ex.close()
