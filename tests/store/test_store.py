from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite
import pytest

from bot.core.events import (
    Candle,
    Direction,
    EquitySnapshot,
    OrderFilled,
    OrderIntent,
    OrderSubmitted,
    OrderType,
    PositionChanged,
    Side,
    Signal,
)
from bot.store.store import MIGRATIONS, SCHEMA_VERSION, Store, migrate


def candle(ts: int, close: float = 100.0) -> Candle:
    return Candle("binance", "BTC/USDT", "1h", ts, close, close + 1, close - 1, close, 5.0)


async def test_candles_round_trip_and_uniqueness(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.sqlite") as store:
        batch = [candle(i * 3_600_000, 100.0 + i) for i in range(10)]
        assert await store.upsert_candles(batch) == 10
        # re-inserting (and overlapping) never duplicates
        assert await store.upsert_candles(batch[5:] + [candle(10 * 3_600_000)]) == 1
        loaded = await store.load_candles("binance", "BTC/USDT", "1h")
        assert loaded == batch + [candle(10 * 3_600_000)]
        assert await store.last_candle_ts("binance", "BTC/USDT", "1h") == 10 * 3_600_000
        window = await store.load_candles("binance", "BTC/USDT", "1h", since=3_600_000, until=3 * 3_600_000)
        assert [c.ts for c in window] == [3_600_000, 7_200_000]


async def test_facts_round_trip_scoped_by_portfolio(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    sig = Signal("ma", "BTC/USDT", "1h", 7, Direction.LONG, 80.0, votes={"a": "long"},
                 attributions={"rsi": 0.6})
    intent = OrderIntent("ma:1:entry", "ma:1", "BTC/USDT", Side.BUY, 0.5, stop_price=90.0, ts=7)
    async with await Store.open(path, portfolio="a") as store:
        store.record(sig)
        store.record_decision(intent, None)
        store.record(OrderSubmitted("o1", intent.intent_id, "BTC/USDT", Side.BUY, 0.5,
                                    OrderType.MARKET, None, 7))
        fill = OrderFilled("o1", "t1", "BTC/USDT", Side.BUY, 0.5, 100.0, 0.05, 8)
        store.record(fill)
        store.record(fill)  # same trade id again: deduplicated
        store.record(PositionChanged("BTC/USDT", 0.5, 100.0, 94.0, 112.0, -0.05, 8))
        store.record(EquitySnapshot(8, 950.0, 1000.0, 50.0, 3.0))
        assert await store.flush() == 7
        assert (await store.fetch("signals"))[0]["votes_json"] == '{"a": "long"}'
        assert len(await store.fetch("fills")) == 1
        assert (await store.fetch("orders"))[0]["leg"] == "entry"
        assert (await store.fetch("positions"))[0]["stop_price"] == 94.0
        assert (await store.fetch("equity"))[0]["heat"] == 3.0
        assert (await store.fetch("risk_decisions"))[0]["approved"] == 1
    async with await Store.open(path, portfolio="b") as other:
        assert await other.count("fills") == 0  # portfolios do not see each other


async def test_failed_flush_loses_nothing(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.sqlite") as store:
        store.record(EquitySnapshot(1, 1.0, 1.0, 0.0))
        store._pending.append(("INSERT INTO no_such_table VALUES (1)", ()))
        with pytest.raises(Exception):
            await store.flush()
        assert await store.count("equity") == 0  # the transaction rolled back as a whole
        store._pending = [r for r in store._pending if "no_such_table" not in r[0]]
        assert await store.flush() == 1
        assert await store.count("equity") == 1


async def test_written_behind_rows_are_read_back_and_ordered(tmp_path: Path) -> None:
    """``flush_behind`` returns before its write ends; the next read waits for it, and later
    rows of a table never land before earlier ones (an order's insert before its status)."""
    async with await Store.open(tmp_path / "s.sqlite") as store:
        for i in range(2_000):
            store.record(EquitySnapshot(i, 1.0, 1.0 + i, 0.0))
        store.record(OrderSubmitted("o1", "ma:1:entry", "BTC/USDT", Side.BUY, 0.5, OrderType.MARKET, None, 7))
        await store.flush_behind()
        await store.set_order_status("o1", "filled", 8)  # queued while the insert may be in flight
        await store.flush_behind()
        await store.upsert_candles([candle(0)])  # the reading connection writes too, after it
        assert await store.column("equity", "equity") == [1.0 + i for i in range(2_000)]
        assert [o["status"] for o in await store.fetch("orders")] == ["filled"]
        assert await store.flush() == 0


async def test_failed_write_behind_loses_nothing_and_is_raised(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.sqlite") as store:
        store.record(EquitySnapshot(1, 1.0, 1.0, 0.0))
        store._pending.append(("INSERT INTO no_such_table VALUES (1)", ()))
        await store.flush_behind()  # does not wait: the failure comes with the next call
        store.record(EquitySnapshot(2, 1.0, 2.0, 0.0))
        with pytest.raises(Exception, match="no_such_table"):
            await store.count("equity")
        store._pending = [r for r in store._pending if "no_such_table" not in r[0]]
        assert [r[1][1] for r in store._pending] == [1, 2]  # back in the queue, in order
        assert await store.count("equity") == 0  # nothing of the failed transaction was written
        assert await store.flush() == 2
        assert await store.column("equity", "ts") == [1, 2]


async def test_in_memory_store_writes_and_reads_one_database() -> None:
    async with await Store.open(":memory:") as store, await Store.open(":memory:") as other:
        store.record(EquitySnapshot(1, 1.0, 1.0, 0.0))
        await store.flush_behind()
        assert await store.count("equity") == 1
        assert await other.count("equity") == 0  # each in-memory store is its own database


async def test_migration_from_older_schema_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    async with await Store.open(path, target_version=1) as old:
        assert await old.schema_version() == 1
        await old.upsert_candles([candle(0)])
        old._pending.append((
            "INSERT INTO orders (portfolio, order_id, intent_id, symbol, side, amount, order_type,"
            " price, status, exchange_order_id, ts) VALUES ('default','o','i','BTC/USDT','buy',1,"
            "'market',NULL,'filled','',5)", ()))
        await old.flush()
    async with await Store.open(path) as store:
        assert await store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
        orders = await store.fetch("orders")
        assert orders[0]["order_id"] == "o" and orders[0]["leg"] == "entry"
        assert await store.load_candles("binance", "BTC/USDT", "1h") == [candle(0)]


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite"
    async with aiosqlite.connect(path) as db:
        await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        await db.commit()
    async with aiosqlite.connect(path) as db:
        with pytest.raises(RuntimeError, match="newer than this program"):
            await migrate(db)


async def test_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    """Two processes opening a new store at once (a search and its reader): one migrates, none fails."""
    import asyncio

    for round_ in range(40):  # one round lost the race about one time in twelve before the fix
        path = tmp_path / f"race{round_}.sqlite"
        stores = await asyncio.gather(*(Store.open(path) for _ in range(4)))
        try:
            assert [await s.schema_version() for s in stores] == [SCHEMA_VERSION] * 4
        finally:
            for s in stores:
                await s.close()


async def test_a_decision_stores_the_whole_intent_as_json(tmp_path: Path) -> None:
    import json
    from dataclasses import asdict

    from bot.core.events import OrderDenied

    intent = OrderIntent("s1:exit", "s1", "BTC/USDT", Side.SELL, 0.25, OrderType.LIMIT, 101.5, True,
                         None, 120.0, 71.5, 3_600_000, "exit")
    async with await Store.open(tmp_path / "s.sqlite") as store:
        store.record_decision(intent, OrderDenied(intent.intent_id, intent.symbol, "max_heat", "too hot", 1))
        await store.flush()
        rows = await store.fetch("risk_decisions")
    assert [(r["approved"], r["check_name"]) for r in rows] == [(0, "max_heat")]
    # every field, enums as their values, None as null: what dataclasses.asdict would give
    assert rows[0]["intent_json"] == json.dumps(asdict(intent), default=str)
    assert json.loads(rows[0]["intent_json"])["side"] == "sell"


async def test_a_column_reads_what_fetch_reads_in_the_same_order(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.sqlite", portfolio="a") as store:
        for ts in (3, 1, 2):  # queued out of time order: both read in time order
            store.record(EquitySnapshot(ts, 10.0 * ts, 100.0 + ts, 0.0, 0.0))
        await store.flush()
        assert await store.column("equity", "equity") == [r["equity"] for r in await store.fetch("equity")]
        assert await store.column("equity", "equity") == [101.0, 102.0, 103.0]
        with pytest.raises(ValueError):
            await store.column("equity", "equity; DROP TABLE equity")


async def test_a_write_behind_under_way_is_not_waited_for_until_the_queue_is_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replay goes on while the writer is busy: rows stay queued for the next call, in order."""
    import sqlite3

    import bot.store.store as store_module

    monkeypatch.setattr(store_module, "BEHIND_MAX_ROWS", 40)
    path = tmp_path / "s.sqlite"
    async with await Store.open(path) as store:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the first write waits for this lock
        try:
            for ts in range(20):
                store.record(EquitySnapshot(ts, 1.0, 1.0, 0.0))
            await store.flush_behind()
            for ts in range(20, 40):
                store.record(EquitySnapshot(ts, 1.0, 1.0, 0.0))
            await asyncio.wait_for(store.flush_behind(), 1.0)  # returned at once: nothing waited for
            assert len(store._pending) == 20  # queued for the next call
            for ts in range(40, 60):
                store.record(EquitySnapshot(ts, 1.0, 1.0, 0.0))
            full = asyncio.ensure_future(store.flush_behind())  # 20 queued + 20: the queue is full
            await asyncio.sleep(0.3)
            assert not full.done()  # it waits for the write under way
            blocker.execute("COMMIT")
            await asyncio.wait_for(full, 10.0)
        finally:
            blocker.close()
        assert await store.column("equity", "ts") == list(range(60))
