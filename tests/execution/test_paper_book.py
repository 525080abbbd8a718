"""The book-walking paper executor on real recorded Binance books."""

from __future__ import annotations

import asyncio
import gzip
import json
import random
from pathlib import Path

import pytest

from bot.core.events import Candle, OrderBook, OrderFilled, OrderIntent, OrderType, Side, Trade
from bot.core.orders import OrderClosed, OrderState
from bot.execution.paper_book import Fees, PaperBookExecutor
from bot.marketdata.orderbook import L2Book, SyncResult

SYM = "BTC/USDT"


def recorded(data_dir: Path, name: str = "btcusdt_20240808.gz") -> list[tuple[int, dict]]:
    out = []
    with gzip.open(data_dir / "orderbook" / "binance-spot" / name, "rt") as fh:
        for line in fh:
            stamp, _, raw = line.rstrip("\n").partition(" ")
            out.append((int(stamp) // 1_000_000, json.loads(raw)))
    return out


def snapshot_book(data_dir: Path) -> OrderBook:
    for ts, msg in recorded(data_dir):
        if "stream" not in msg:
            bids = tuple((float(p), float(q)) for p, q in msg["bids"])
            asks = tuple((float(p), float(q)) for p, q in msg["asks"])
            return OrderBook("binance", SYM, ts, bids, asks, msg["lastUpdateId"])
    raise AssertionError("no snapshot in the recording")


def market(i: int, side: Side, amount: float, leg: str = "entry", **kw: object) -> OrderIntent:
    return OrderIntent(f"sig{i}:{leg}", f"sig{i}", SYM, side, amount, leg=leg, **kw)  # type: ignore[arg-type]


def fills(facts: list) -> list[OrderFilled]:
    return [f for f in facts if isinstance(f, OrderFilled)]


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_market_buy_walks_the_recorded_snapshot_like_a_hand_computation(data_dir: Path) -> None:
    book = snapshot_book(data_dir)
    ex = PaperBookExecutor(default_fees=Fees(maker=0.0002, taker=0.001))

    async def go() -> tuple[list, list, list]:
        await ex.on_market(book)
        a = await ex.submit(market(1, Side.BUY, 1.6), book.ts)
        b = await ex.submit(market(2, Side.BUY, 0.3), book.ts)
        c = await ex.submit(market(3, Side.SELL, 4.5, leg="exit"), book.ts)
        return a, b, c

    a, b, c = run(go())
    # first ask levels of the 2024-08-08 23:54 snapshot, taken by hand:
    cost1 = (1.54698 * 61837.64 + 0.00843 * 61837.65 + 0.00016 * 61837.68
             + 0.00086 * 61838.13 + 0.00082 * 61838.95 + 0.04275 * 61839.87)
    (f1,) = fills(a)
    assert f1.amount == pytest.approx(1.6) and f1.price == pytest.approx(cost1 / 1.6, rel=1e-12)
    assert f1.fee == pytest.approx(cost1 * 0.001) and f1.liquidity == "taker"
    # displayed size cannot fill twice: the second buy starts where the first stopped
    cost2 = 0.28056 * 61839.87 + 0.0001 * 61839.92 + 0.01934 * 61840.49
    (f2,) = fills(b)
    assert f2.price == pytest.approx(cost2 / 0.3, rel=1e-12)
    cost3 = 3.78826 * 61837.63 + 0.617 * 61837.62 + 0.09474 * 61837.24
    (f3,) = fills(c)
    assert f3.price == pytest.approx(cost3 / 4.5, rel=1e-12)
    assert all(isinstance(x[-1], OrderClosed) and x[-1].state is OrderState.FILLED for x in (a, b, c))


def reference_walk(levels: list[tuple[float, float]], qty: float) -> tuple[float, float]:
    """The naive walk: take each level in turn until the quantity is done."""
    got = cost = 0.0
    for price, size in levels:
        take = size if got + size <= qty else qty - got
        got += take
        cost += take * price
        if got >= qty:
            break
    return got, cost


def test_fills_on_many_recorded_books_equal_the_reference_walk(data_dir: Path) -> None:
    lob = L2Book(SYM)
    rng = random.Random(7)
    checked = 0
    for i, (ts, msg) in enumerate(recorded(data_dir)):
        if "stream" not in msg:
            lob.load_snapshot(msg["lastUpdateId"], msg["bids"], msg["asks"])
            continue
        if not msg["stream"].endswith("@depth@100ms"):
            continue
        assert lob.apply_message(msg["data"]) is not SyncResult.NEED_SNAPSHOT
        if not lob.synced or i % 97:
            continue
        snap = lob.snapshot(depth=200)
        side = rng.choice((Side.BUY, Side.SELL))
        qty = round(rng.uniform(0.001, 8.0), 5)
        ex = PaperBookExecutor(max_slippage_bps=10_000)

        async def go() -> list:
            await ex.on_market(snap)
            return await ex.submit(market(i, side, qty), ts)

        (fill,) = fills(run(go()))
        levels = list(snap.asks if side is Side.BUY else snap.bids)
        got, cost = reference_walk(levels, qty)
        assert fill.amount == pytest.approx(got, rel=1e-12)
        assert fill.price == pytest.approx(cost / got, rel=1e-12)
        checked += 1
    assert checked > 25


def book(ts: int, bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> OrderBook:
    return OrderBook("binance", SYM, ts, tuple(bids), tuple(asks))


def test_limit_rests_then_fills_as_maker_when_crossed_partially() -> None:
    ex = PaperBookExecutor(default_fees=Fees(maker=0.0002, taker=0.001))
    intent = OrderIntent("l:entry", "l", SYM, Side.BUY, 2.0, OrderType.LIMIT, price=99.0)

    async def go() -> tuple[list, list, list]:
        await ex.on_market(book(1, [(98.0, 5)], [(100.0, 5)]))
        placed = await ex.submit(intent, 1)
        first = await ex.on_market(book(2, [(98.0, 5)], [(99.0, 0.5), (99.5, 3)]))
        second = await ex.on_market(book(3, [(97.0, 5)], [(98.5, 4)]))
        return placed, first, second

    placed, first, second = run(go())
    assert fills(placed) == []
    (f1,) = fills(first)
    assert (f1.amount, f1.price, f1.liquidity) == (0.5, 99.0, "maker")
    assert f1.fee == pytest.approx(0.5 * 99.0 * 0.0002)
    (f2,) = fills(second)
    assert f2.amount == pytest.approx(1.5) and f2.price == 99.0
    assert isinstance(second[-1], OrderClosed) and second[-1].state is OrderState.FILLED


def test_consumed_liquidity_decays_only_as_the_displayed_size_shrinks() -> None:
    ex = PaperBookExecutor()

    async def go() -> list[list]:
        await ex.on_market(book(1, [(99.0, 1)], [(100.0, 1.0), (101.0, 10)]))
        out = [await ex.submit(market(1, Side.BUY, 0.8), 1)]
        await ex.on_market(book(2, [(99.0, 1)], [(100.0, 1.0), (101.0, 10)]))  # unchanged: 0.2 left
        out.append(await ex.submit(market(2, Side.BUY, 0.5), 2))
        await ex.on_market(book(3, [(99.0, 1)], [(100.0, 0.5), (101.0, 10)]))  # others took 0.5
        out.append(await ex.submit(market(3, Side.BUY, 0.5), 3))
        return out

    a, b, c = run(go())
    assert fills(b)[0].price == pytest.approx((0.2 * 100 + 0.3 * 101) / 0.5)
    # 1.0 consumed (0.8 + 0.2), displayed shrank by 0.5 -> 0.5 still ours, none left at 100
    assert fills(c)[0].price == pytest.approx(101.0)


def test_latency_delays_matching_to_the_first_book_after_arrival() -> None:
    ex = PaperBookExecutor(latency_ms=250)

    async def go() -> tuple[list, list, list]:
        await ex.on_market(book(1000, [(99.0, 1)], [(100.0, 1)]))
        placed = await ex.submit(market(1, Side.BUY, 0.5), 1000)
        early = await ex.on_market(book(1100, [(99.0, 1)], [(100.0, 1)]))
        late = await ex.on_market(book(1300, [(100.0, 1)], [(102.0, 1)]))
        return placed, early, late

    placed, early, late = run(go())
    assert fills(placed) == [] and fills(early) == []
    assert fills(late)[0].price == 102.0 and fills(late)[0].ts == 1300


def test_market_order_deeper_than_the_band_expires_its_remainder() -> None:
    ex = PaperBookExecutor(max_slippage_bps=50)

    async def go() -> list:
        await ex.on_market(book(1, [(99.0, 1)], [(100.0, 1.0), (100.4, 1.0), (101.0, 5.0)]))
        return await ex.submit(market(1, Side.BUY, 3.0), 1)

    out = run(go())
    assert fills(out)[0].amount == pytest.approx(2.0)
    assert isinstance(out[-1], OrderClosed) and out[-1].state is OrderState.EXPIRED


def test_without_a_book_orders_fill_at_the_next_open_with_slippage() -> None:
    ex = PaperBookExecutor(slippage_bps=10.0, default_fees=Fees(taker=0.001))

    async def go() -> tuple[list, list, list]:
        placed = await ex.submit(market(1, Side.BUY, 1.0, price=100.0), 0)
        filled = await ex.on_market(Candle("binance", SYM, "1h", 3_600_000, 110.0, 111, 109, 110, 1))
        stop = await ex.submit(market(2, Side.SELL, 1.0, leg="stop", price=95.0, reduce_only=True), 1)
        return placed, filled, stop

    placed, filled, stop = run(go())
    assert fills(placed) == []
    assert fills(filled)[0].price == pytest.approx(110.0 * 1.001)
    assert fills(stop)[0].price == pytest.approx(95.0 * 0.999)


def test_a_trade_through_a_resting_limit_fills_it() -> None:
    ex = PaperBookExecutor()
    intent = OrderIntent("l:entry", "l", SYM, Side.BUY, 1.0, OrderType.LIMIT, price=99.0)

    async def go() -> list:
        await ex.on_market(book(1, [(98.0, 5)], [(100.0, 5)]))
        await ex.submit(intent, 1)
        return await ex.on_market(Trade("binance", SYM, 2, 98.9, 0.4, Side.SELL, "t1"))

    (f,) = fills(run(go()))
    assert (f.amount, f.price, f.liquidity) == (0.4, 99.0, "maker")
