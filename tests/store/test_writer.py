"""The store's writer: a small waited-for transaction on the caller's thread (Writer.write_here)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from bot.core.events import EquitySnapshot
from bot.store.store import Store
from bot.store.writer import Writer

INSERT = "INSERT INTO t VALUES (?)"


def database(tmp_path: Path) -> str:
    path = str(tmp_path / "w.sqlite")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (v INTEGER)")
    return path


def values(path: str) -> list[int]:
    with sqlite3.connect(path) as conn:
        return [r[0] for r in conn.execute("SELECT v FROM t ORDER BY rowid")]


async def test_written_here_when_no_job_is_queued(tmp_path: Path) -> None:
    path = database(tmp_path)
    writer = Writer(path)
    try:
        assert writer.write_here([(INSERT, [(1,), (2,)])])
        assert values(path) == [1, 2]  # committed before it returned
    finally:
        await writer.close()


async def test_not_written_here_while_a_job_is_queued(tmp_path: Path) -> None:
    path = database(tmp_path)
    writer = Writer(path)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # the thread's job waits for this lock
    try:
        job = writer.write([(INSERT, [(1,)])])
        assert not writer.write_here([(INSERT, [(2,)])])  # it would overtake the queued job
        blocker.execute("COMMIT")
        await asyncio.wrap_future(job)
        assert writer.write_here([(INSERT, [(2,)])])
        assert values(path) == [1, 2]
    finally:
        blocker.close()
        await writer.close()


async def test_never_waits_here_for_a_lock_another_connection_holds(tmp_path: Path) -> None:
    path = database(tmp_path)
    writer = Writer(path)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        assert not writer.write_here([(INSERT, [(1,)])])  # at once, nothing written
        job = writer.write([(INSERT, [(1,)])])  # the thread waits its turn (busy timeout kept)
        threading.Timer(0.2, lambda: blocker.execute("COMMIT")).start()
        await asyncio.wrap_future(job)
        assert values(path) == [1]
    finally:
        blocker.close()
        await writer.close()


async def test_a_failed_write_here_is_raised_and_rolled_back(tmp_path: Path) -> None:
    path = database(tmp_path)
    writer = Writer(path)
    try:
        with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
            writer.write_here([(INSERT, [(1,)]), ("INSERT INTO no_such_table VALUES (?)", [(1,)])])
        assert values(path) == []
        assert writer.write_here([(INSERT, [(3,)])])  # the connection is usable after it
        assert values(path) == [3]
    finally:
        await writer.close()


async def test_a_store_flush_of_a_few_rows_is_written_on_the_loop_thread(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.sqlite") as store:
        assert store._writer is not None
        threads: list[str] = []
        write_here = store._writer.write_here

        def spy(batches):  # type: ignore[no-untyped-def]
            threads.append(threading.current_thread().name)
            return write_here(batches)

        store._writer.write_here = spy  # type: ignore[method-assign]
        store.record(EquitySnapshot(1, 1.0, 1.0, 0.0))
        assert await store.flush() == 1
        for i in range(40):  # too many rows to hold the loop for: the writer's thread
            store.record(EquitySnapshot(2 + i, 1.0, 1.0, 0.0))
        assert await store.flush() == 40
        assert threads == [threading.current_thread().name]
        assert await store.count("equity") == 41
