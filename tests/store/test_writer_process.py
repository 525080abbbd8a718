"""The store writer's process (bot.store.writer_process, bot.store.writer_child): queued
transactions written beside a busy caller, failures raised as they were, a killed process
failing closed."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from bot.core.events import EquitySnapshot
from bot.store.schema import StoreError
from bot.store.store import Store
from bot.store.writer import Writer
from tests.store.test_writer import INSERT, database, values

def child_pid(writer: Writer) -> int:
    process = writer._process
    assert process is not None and process._proc is not None
    return process._proc.pid


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")


async def test_a_write_behind_ends_while_the_callers_thread_never_lets_go_of_the_gil(tmp_path: Path) -> None:
    """On a thread of this process the write would wait for the GIL after every row's step (a
    replay holds it), and barely move until the caller stopped to wait for it."""
    path = database(tmp_path)
    writer = Writer(path)
    try:
        await asyncio.wrap_future(writer.write([(INSERT, [(0,)])]))  # the process is up
        job = writer.write([(INSERT, [(i,) for i in range(1, 20_001)])])
        deadline = time.monotonic() + 5.0  # a thread of this process: ~18 s here
        while not job.done() and time.monotonic() < deadline:
            sum(range(200))  # pure Python: the GIL is only taken away by the interpreter's switch
        assert job.done(), "the write did not run beside the busy caller"
        assert job.exception() is None
        assert values(path) == list(range(20_001))
    finally:
        await writer.close()


async def test_a_failure_in_the_process_is_raised_as_it_was_and_rolled_back(tmp_path: Path) -> None:
    path = database(tmp_path)
    writer = Writer(path)
    try:
        job = writer.write([(INSERT, [(1,)]), ("INSERT INTO no_such_table VALUES (?)", [(1,)])])
        with pytest.raises(sqlite3.OperationalError, match="no_such_table") as failed:
            await asyncio.wrap_future(job)
        assert failed.value.sqlite_errorcode == sqlite3.SQLITE_ERROR  # type: ignore[attr-defined]
        assert values(path) == []
        with pytest.raises(sqlite3.ProgrammingError):  # a bad binding, raised in the process
            await asyncio.wrap_future(writer.write([(INSERT, [(1, 2)])]))
        await asyncio.wrap_future(writer.write([(INSERT, [(3,)])]))  # the process is still usable
        assert values(path) == [3]
    finally:
        await writer.close()


async def test_a_database_the_process_cannot_open_is_an_error_not_a_crash(tmp_path: Path) -> None:
    writer = Writer(str(tmp_path / "no" / "such" / "dir.sqlite"))
    try:
        with pytest.raises(sqlite3.OperationalError, match="unable to open"):
            await asyncio.wrap_future(writer.write([(INSERT, [(1,)])]))
        assert alive(child_pid(writer))
    finally:
        await writer.close()


async def test_a_killed_process_fails_closed_and_its_rows_stay_queued(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "s.sqlite") as store:
        assert store._writer is not None
        for ts in range(40):
            store.record(EquitySnapshot(ts, 1.0, 1.0, 0.0))
        assert await store.flush() == 40  # through the process
        os.kill(child_pid(store._writer), signal.SIGKILL)
        for ts in range(40, 80):
            store.record(EquitySnapshot(ts, 1.0, 1.0, 0.0))
        with pytest.raises(StoreError, match="writer process ended"):
            await store.flush()
        assert [r[1][1] for r in store._pending] == list(range(40, 80))  # nothing lost
        with pytest.raises(StoreError, match="writer process ended"):  # and never guessed again
            await store.flush()
        store._pending = []  # (close flushes: the store itself still reads)
        assert await store.count("equity") == 40


async def test_terminal_and_service_signals_do_not_end_the_process(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole foreground group: the parent's last flush must still be written."""
    path = database(tmp_path)
    writer = Writer(path)
    try:
        await asyncio.wrap_future(writer.write([(INSERT, [(1,)])]))
        pid = child_pid(writer)
        assert os.getpgid(pid) != os.getpgid(0)  # not in the terminal's group at all
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            os.kill(pid, sig)
        await asyncio.sleep(0.2)
        await asyncio.wrap_future(writer.write([(INSERT, [(2,)])]))
        assert values(path) == [1, 2]
    finally:
        await writer.close()
    assert not alive(pid)  # closing ends it


async def test_an_in_memory_store_is_written_by_this_process() -> None:
    async with await Store.open(":memory:") as store:
        assert store._writer is not None and store._writer._process is None
        for ts in range(40):
            store.record(EquitySnapshot(ts, 1.0, 1.0, 0.0))
        await store.flush_behind()
        assert await store.count("equity") == 40


async def test_closing_ends_the_process_while_a_forked_copy_holds_its_pipe(tmp_path: Path) -> None:
    path = database(tmp_path)
    writer = Writer(path)
    await asyncio.wrap_future(writer.write([(INSERT, [(1,)])]))
    assert writer._process is not None and writer._process._proc is not None
    proc = writer._process._proc
    fork = os.fork()  # holds a copy of the pipe's writing end: no end of file while it lives
    if fork == 0:
        time.sleep(30)
        os._exit(0)
    try:
        await writer.close()
        assert proc.returncode == 0  # it ended on its own, at once (not killed after the wait)
    finally:
        os.kill(fork, signal.SIGKILL)
        os.waitpid(fork, 0)


async def test_values_are_stored_as_sqlite3_binds_them_here(tmp_path: Path) -> None:
    """Subclasses of float, int and str (numpy floats, str and int enums) are what sqlite3 binds
    on this side; a value it cannot bind fails the transaction and leaves the process usable."""
    import enum

    import numpy as np

    from bot.core.events import Side

    class Level(enum.IntEnum):
        HIGH = 3

    rows = [(np.float64(0.1),), (Side.BUY,), (Level.HIGH,), (True,), (2**62,), (None,), (b"\x00b",),
            ("é",), (1e308 * 10,)]
    expected = tmp_path / "direct.sqlite"
    with sqlite3.connect(expected) as conn:
        conn.execute("CREATE TABLE t (v)")
        conn.executemany("INSERT INTO t VALUES (?)", rows)
        want = conn.execute("SELECT v, typeof(v) FROM t ORDER BY rowid").fetchall()
    path = database(tmp_path)
    writer = Writer(path)
    try:
        await asyncio.wrap_future(writer.write([(INSERT, rows)]))
        with sqlite3.connect(path) as conn:
            assert conn.execute("SELECT v, typeof(v) FROM t ORDER BY rowid").fetchall() == want
        for bad in (object(), np.int64(1), 2**70):
            with pytest.raises((sqlite3.ProgrammingError, OverflowError)):
                await asyncio.wrap_future(writer.write([(INSERT, [(1,), (bad,)])]))
        await asyncio.wrap_future(writer.write([(INSERT, [(7,)])]))
        assert values(path)[-1] == 7 and len(values(path)) == len(rows) + 1
    finally:
        await writer.close()
