"""``ReadOnlyStore`` (sqlite3, synchronous) reads and refuses what ``Store.open(read_only=True)`` does."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from bot.core.events import Direction, EquitySnapshot, PositionChanged, Signal
from bot.store.readonly import ReadOnlyStore
from bot.store.schema import SCHEMA_VERSION, TABLES, StoreError
from bot.store.store import Store


async def seeded(path: Path, portfolio: str) -> None:
    store = await Store.open(path, portfolio=portfolio)
    for i in range(3):
        store.record(Signal("ens", "BTC/USDT", "1h", 1_000 + i, Direction.LONG, 60.0 + i, probability=0.6,
                            attributions={"rsi_14": 0.1 * i}, reason=f"why {i}"))
    store.record(PositionChanged("BTC/USDT", 0.5, 100.0, 90.0, None, 1.5, 1_000))
    store.record(EquitySnapshot(1_002, 10.0, 60.0, 50.0, 5.0))
    await store.record_operator_action("pause", "ops", "maintenance", 1_003, state=("halted", "by hand"))
    await store.close()


async def test_reads_what_the_read_only_store_reads(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite"
    await seeded(path, "p1")
    await seeded(path, "p2")  # another portfolio's rows are never read
    store = await Store.open(path, portfolio="p1", read_only=True)
    try:
        expected = {t: await store.fetch(t) for t in sorted(TABLES)}
        state, actions, version = (await store.load_trading_state(), await store.operator_actions(),
                                   await store.schema_version())
        last = await store.fetch("equity", "ts >= ?", (1_002,))
    finally:
        await store.close()
    with ReadOnlyStore.open(path, portfolio="p1") as ro:
        assert {t: ro.fetch(t) for t in sorted(TABLES)} == expected
        assert ro.load_trading_state() == state == ("halted", "by hand")
        assert ro.operator_actions() == actions and len(actions) == 1
        assert ro.schema_version() == version == SCHEMA_VERSION
        assert ro.fetch("equity", "ts >= ?", (1_002,)) == last and len(last) == 1
        with pytest.raises(ValueError, match="unknown table"):
            ro.fetch("runs")
    assert expected["signals"] and expected["positions"]  # the comparison compared something


async def test_a_file_that_is_not_a_store_is_refused_alike(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"not a database at all\n" * 64)
    with pytest.raises(StoreError) as old:
        await Store.open(path, read_only=True)
    with pytest.raises(StoreError) as new:
        ReadOnlyStore.open(path)
    assert str(new.value) == str(old.value) and "not an SQLite database" in str(new.value)


async def test_a_store_from_a_newer_program_is_refused_alike(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite"
    async with aiosqlite.connect(path) as db:
        await db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        await db.commit()
    with pytest.raises(StoreError) as old:
        await Store.open(path, read_only=True)
    with pytest.raises(StoreError) as new:
        ReadOnlyStore.open(path)
    assert str(new.value) == str(old.value) and "newer than this program" in str(new.value)


async def test_it_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "bot.sqlite"
    await seeded(path, "default")
    before = path.read_bytes()
    with ReadOnlyStore.open(path) as ro, pytest.raises(sqlite3.OperationalError, match="readonly"):
        ro._db.execute("DELETE FROM signals")
    assert path.read_bytes() == before
