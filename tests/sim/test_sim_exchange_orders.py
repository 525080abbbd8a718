"""Orders on the loopback exchange as the official Binance connector (PyPI binance-connector)
sees them: filters, order types, validation, cancels -- what Binance spot answers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from binance.error import ClientError
from binance.spot import Spot

from bot.sim import SimExchange, SimSettings

START = 1_577_836_800_000  # 2020-01-01
SYM = "BTCUSDT"


def sim_settings(data_dir: Path, **kw: Any) -> SimSettings:
    base: dict[str, Any] = dict(data_dir=data_dir, speed=1.0, start_ms=START,
                                symbols=("BTC/USDT",), timeframes=("1h",))
    return SimSettings(**(base | kw))


@contextlib.asynccontextmanager
async def connector(data_dir: Path, **kw: Any) -> AsyncIterator[tuple[SimExchange, Spot]]:
    async with SimExchange(sim_settings(data_dir, **kw)) as sim:
        yield sim, Spot(api_key="sim-key", api_secret="sim-secret", base_url=sim.http_url,
                        timeout=10)


async def call(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    return await asyncio.to_thread(fn, *args, **kw)


async def refused(fn: Callable[..., Any], *args: Any, **kw: Any) -> ClientError:
    with pytest.raises(ClientError) as info:
        await call(fn, *args, **kw)
    return info.value


def usdt(account: dict) -> str:
    return next(b["free"] for b in account["balances"] if b["asset"] == "USDT")


async def test_filters_carry_binance_values_and_are_enforced(data_dir: Path) -> None:
    async with connector(data_dir) as (sim, client):
        info = await call(client.exchange_info, symbol=SYM)
        filters = {f["filterType"]: f for f in info["symbols"][0]["filters"]}
        assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000"
        assert filters["LOT_SIZE"]["stepSize"] == "0.00001000"
        assert filters["NOTIONAL"]["minNotional"] == "5.00000000"
        price = float((await call(client.ticker_price, SYM))["price"])
        cases = {
            ("0.000000001", f"{price * 0.9:.2f}"): "Filter failure: LOT_SIZE",  # under the step
            ("0.00001", f"{price * 0.9:.2f}"): "Filter failure: NOTIONAL",  # ~0.06 USDT
            ("0.001", f"{price * 0.9:.2f}1"): "Filter failure: PRICE_FILTER",  # 3 decimals
            ("0.0010001", f"{price * 0.9:.2f}"): "Filter failure: LOT_SIZE",  # off the step
        }
        for (qty, px), msg in cases.items():
            err = await refused(client.new_order, SYM, "BUY", "LIMIT", quantity=qty, price=px,
                                timeInForce="GTC")
            assert (err.status_code, err.error_code, err.error_message) == (400, -1013, msg)
        err = await refused(client.new_order, SYM, "BUY", "MARKET", quantity="150")
        assert err.error_message == "Filter failure: MARKET_LOT_SIZE"
        assert sim.matcher.orders == {}


async def test_nonsense_values_are_refused_and_leave_the_account_intact(data_dir: Path) -> None:
    async with connector(data_dir) as (sim, client):
        before = await call(client.account)
        price = f"{float((await call(client.ticker_price, SYM))['price']) * 0.9:.2f}"
        for bad in ("nan", "inf", "1e308", "-1", "0x10", ""):
            for field in ("quantity", "price"):
                params = {"quantity": "0.001", "price": price, "timeInForce": "GTC", field: bad}
                err = await refused(client.new_order, SYM, "BUY", "LIMIT", **params)
                assert err.error_code in (-1100, -1102), (field, bad, err.error_message)
            err = await refused(client.new_order, SYM, "SELL", "STOP_LOSS", quantity="0.001",
                                stopPrice=bad)
            assert err.error_code in (-1100, -1102)
        err = await refused(client.new_order, SYM, "SELL", "MARKET", quantity="1000000")
        assert err.error_code in (-2010, -1013)
        err = await refused(client.new_order, SYM, "SELL", "MARKET", quantity="50")
        assert (err.error_code, err.error_message) == (
            -2010, "Account has insufficient balance for requested action.")
        assert (await call(client.account))["balances"] == before["balances"]
        assert usdt(before) == "100000.00000000"


async def test_fok_fills_completely_or_not_at_all(data_dir: Path) -> None:
    async with connector(data_dir) as (sim, client):
        bids, asks = sim.book_levels(SYM, 2)
        (best, avail), (second, _) = asks
        over = f"{avail + 0.00001:.5f}"  # one step more than the best level holds
        order = await call(client.new_order, SYM, "BUY", "LIMIT", quantity=over,
                           price=f"{best:.2f}", timeInForce="FOK")
        assert order["status"] == "EXPIRED" and order["executedQty"] == "0.00000000"
        assert order["fills"] == [] and sim.matcher.trades == []
        order = await call(client.new_order, SYM, "BUY", "LIMIT", quantity=over,
                           price=f"{second:.2f}", timeInForce="FOK")
        assert order["status"] == "FILLED" and order["executedQty"] == f"{float(over):.8f}"


async def test_order_types_and_response_types(data_dir: Path) -> None:
    async with connector(data_dir) as (sim, client):
        bids, asks = sim.book_levels(SYM, 1)
        err = await refused(client.new_order, SYM, "BUY", "LIMIT_MAKER", quantity="0.001",
                            price=f"{asks[0][0]:.2f}")
        assert (err.error_code, err.error_message) == (-2010, "Order would immediately match and take.")
        maker = await call(client.new_order, SYM, "BUY", "LIMIT_MAKER", quantity="0.001",
                           price=f"{bids[0][0]:.2f}")
        assert "status" not in maker  # ACK: Binance's default for all but MARKET and LIMIT
        assert sim.matcher.orders[maker["orderId"]].status == "NEW"
        err = await refused(client.new_order, SYM, "BUY", "LIMIT", quantity="0.001",
                            price=f"{bids[0][0]:.2f}")
        assert err.error_code == -1102 and "timeInForce" in err.error_message
        by_quote = await call(client.new_order, SYM, "BUY", "MARKET", quoteOrderQty="100")
        assert by_quote["status"] == "FILLED" and by_quote["origQuoteOrderQty"] == "100.00000000"
        assert 99.0 < float(by_quote["cummulativeQuoteQty"]) <= 100.0
        assert float(by_quote["executedQty"]) * 100_000 == pytest.approx(
            round(float(by_quote["executedQty"]) * 100_000))  # on the 0.00001 step
        price = float((await call(client.ticker_price, SYM))["price"])
        target = await call(client.new_order, SYM, "SELL", "TAKE_PROFIT_LIMIT", quantity="0.001",
                            price=f"{price * 1.2:.2f}", stopPrice=f"{price * 1.19:.2f}",
                            timeInForce="GTC", newOrderRespType="RESULT")
        assert target["status"] == "NEW" and "fills" not in target
        assert sim.matcher.orders[target["orderId"]].working is False
        err = await refused(client.new_order, SYM, "SELL", "TAKE_PROFIT", quantity="0.001",
                            stopPrice=f"{price * 0.9:.2f}")
        assert err.error_code == -2010  # a take-profit below the price would trigger at once
        ack = await call(client.new_order, SYM, "BUY", "MARKET", quantity="0.001",
                         newOrderRespType="ACK")
        assert set(ack) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
        full = await call(client.new_order, SYM, "BUY", "MARKET", quantity="0.001")
        assert full["fills"] and full["fills"][0]["commissionAsset"] == "BTC"


async def test_duplicate_client_ids_and_cancel_answers(data_dir: Path) -> None:
    async with connector(data_dir) as (sim, client):
        bids, _ = sim.book_levels(SYM, 1)
        low = f"{bids[0][0] * 0.9:.2f}"
        first = await call(client.new_order, SYM, "BUY", "LIMIT", quantity="0.001", price=low,
                           timeInForce="GTC", newClientOrderId="intent-7")
        err = await refused(client.new_order, SYM, "BUY", "LIMIT", quantity="0.001", price=low,
                            timeInForce="GTC", newClientOrderId="intent-7")
        assert (err.error_code, err.error_message) == (-2010, "Duplicate order sent.")
        canceled = await call(client.cancel_order, SYM, orderId=first["orderId"])
        assert canceled["origClientOrderId"] == "intent-7" and canceled["status"] == "CANCELED"
        assert canceled["transactTime"] > 0 and canceled["clientOrderId"] != "intent-7"
        err = await refused(client.cancel_order, SYM, orderId=first["orderId"])
        assert (err.error_code, err.error_message) == (-2011, "Unknown order sent.")
        err = await refused(client.cancel_order, SYM, orderId=987654)
        assert err.error_code == -2011
        err = await refused(client.cancel_open_orders, SYM)
        assert err.error_code == -2011  # nothing open
        again = await call(client.new_order, SYM, "BUY", "LIMIT", quantity="0.001", price=low,
                           timeInForce="GTC", newClientOrderId="intent-7")
        assert again["orderId"] != first["orderId"]  # an id is free again once its order closed


async def test_bad_requests_never_answer_500(data_dir: Path) -> None:
    async with SimExchange(sim_settings(data_dir)) as sim, aiohttp.ClientSession() as http:
        api = f"{sim.http_url}/api/v3"
        cases = [
            ("GET", f"{api}/klines?symbol=BTCUSDT&interval=1h&limit=abc", None, 400, -1100),
            ("GET", f"{api}/klines?symbol=NOPE&interval=1h", None, 400, -1121),
            ("GET", f"{api}/klines?symbol=BTCUSDT&interval=7m", None, 400, -1120),
            ("GET", f"{api}/depth?symbol=BTCUSDT&limit=1e3", None, 400, -1100),
            ("POST", f"{api}/order", b"symbol=BTCUSDT&\xff\xfe=1", 400, -1100),
            ("GET", f"{api}/nothingHere", None, 404, -5000),
            ("PATCH", f"{api}/order", None, 405, -5000),
        ]
        for method, url, body, status, code in cases:
            headers = {"X-MBX-APIKEY": "sim-key"}
            async with http.request(method, url, data=body, headers=headers) as resp:
                assert resp.status == status, url
                assert (await resp.json())["code"] == code, url
