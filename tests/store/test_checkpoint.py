"""The store's log is checkpointed once writes pause, off the write path (bot.store.checkpoint)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from pathlib import Path

from bot.core.events import EquitySnapshot
from bot.store.checkpoint import Checkpointer
from bot.store.store import SCHEMA_VERSION, Store


def rows_in_database_file(db: Path, tmp: Path) -> int:
    """Equity rows in the database file alone (a copy without its write-ahead log)."""
    copy = tmp / "copy.sqlite"
    shutil.copyfile(db, copy)
    with sqlite3.connect(copy) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return conn.execute("SELECT COUNT(*) FROM equity").fetchone()[0] if "equity" in tables else 0


async def eventually(check, seconds: float = 20.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_committed_rows_reach_the_database_file_once_writes_pause(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    async with await Store.open(db) as store:
        for ts in range(5):
            store.record(EquitySnapshot(ts, 100.0, 100.0, 0.0))
            await store.flush()
        # below SQLite's own threshold nothing would copy the log into the file before close
        assert await eventually(lambda: rows_in_database_file(db, tmp_path) == 5)
        store.record(EquitySnapshot(5, 100.0, 100.0, 0.0))
        await store.flush()
        assert await eventually(lambda: rows_in_database_file(db, tmp_path) == 6)
        assert await store.count("equity") == 6


async def test_the_next_commit_after_a_pause_writes_into_a_log_started_over(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    async with await Store.open(db) as store:
        for ts in range(5):
            store.record(EquitySnapshot(ts, 100.0, 100.0, 0.0))
            await store.flush()
        assert store._writer is not None and store._writer.checkpointer is not None
        checkpointer = store._writer.checkpointer
        assert await eventually(lambda: checkpointer.checkpoints >= 1)
        with sqlite3.connect(db) as conn:  # the log holds only the write that started it over
            assert conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone() == (0, 1, 1)
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION  # unchanged


async def test_commits_that_keep_coming_postpone_the_checkpoint(tmp_path: Path) -> None:
    db = tmp_path / "s.sqlite"
    sqlite3.connect(db).execute("PRAGMA journal_mode=WAL").fetchall()
    checkpointer = Checkpointer(str(db), idle_s=3600.0)  # no pause is ever long enough
    try:
        for _ in range(3):
            checkpointer.committed()
        await asyncio.sleep(0.1)
        assert checkpointer.checkpoints == 0
    finally:
        checkpointer.close()  # returns at once: the thread waiting for the pause ends
    assert checkpointer.checkpoints == 0


def test_a_closed_checkpointer_ignores_commits_and_starts_no_thread(tmp_path: Path) -> None:
    checkpointer = Checkpointer(str(tmp_path / "s.sqlite"))
    checkpointer.close()
    checkpointer.committed()
    checkpointer.close()
    assert checkpointer.checkpoints == 0


async def test_an_in_memory_store_has_no_checkpointer() -> None:
    async with await Store.open(":memory:") as store:
        store.record(EquitySnapshot(1, 100.0, 100.0, 0.0))
        await store.flush()
        assert store._writer is not None and store._writer.checkpointer is None
