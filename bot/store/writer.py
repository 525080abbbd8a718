"""The store's writer: queued rows written in one transaction, off the caller's thread.

:class:`bot.store.store.Store` reads through aiosqlite; its queued facts are written here, so that
a whole transaction (``BEGIN IMMEDIATE``, an ``executemany`` per batch, ``COMMIT``) is one
hand-off instead of a round trip per statement. :meth:`Writer.write` hands it to one worker thread,
which passes it on to the writer's process (:mod:`bot.store.writer_process`): ``sqlite3`` binds
rows holding the GIL, so only there does a write the caller does not wait for
(``Store.flush_behind``) run beside the replay that produced it. An in-memory database is this
process's own: the thread writes it on a connection of its own.

A small transaction the caller waits for anyway (an order intent, before its request leaves) is
written on the caller's thread instead (:meth:`Writer.write_here`), while no job is queued: two
hand-offs less on the order path. It never waits for a lock another process holds (that
one goes to the thread, which waits its turn).

A failed transaction is rolled back and its exception raised from the future: nothing of it is
half-written, and the caller puts the rows back in its queue. The log is checkpointed once writes
pause (:mod:`bot.store.checkpoint`), not inside the commit that an order intent may be.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from bot.store import writer_process
from bot.store.checkpoint import Checkpointer
from bot.store.schema import BUSY_TIMEOUT_MS
from bot.store.writer_child import commit, connect

Batch = tuple[str, list[tuple[Any, ...]]]  # one statement and the parameters of its rows


class Writer:
    """One thread (and the writer's process); :meth:`write` jobs run in submission order (and
    :meth:`write_here` only when none is queued)."""

    def __init__(self, database: str, uri: bool = False) -> None:
        self._database, self._uri = database, uri
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        # used by the caller's thread while no job is queued (``write_here``), or by the worker thread
        # of an in-memory database
        self._conn: sqlite3.Connection | None = None
        self._queued = 0  # jobs submitted and not yet ended
        self._lock = threading.Lock()
        # an in-memory database is this process's alone, and has no write-ahead log to checkpoint
        memory = uri and "mode=memory" in database
        self.checkpointer = None if memory else Checkpointer(database, uri)
        self._process = (writer_process.WriterProcess(database, uri)
                         if not memory and writer_process.available() else None)

    def write(self, batches: Sequence[Batch]) -> Future[None]:
        """Start writing ``batches`` in one transaction; the future says how it ended."""
        with self._lock:
            self._queued += 1
        job = self._pool.submit(self._transaction, batches)
        job.add_done_callback(self._ended)
        return job

    def write_here(self, batches: Sequence[Batch]) -> bool:
        """Write ``batches`` in one transaction on this thread, unless a job is queued or another
        connection holds the write lock: then ``False``, nothing written. A failure is raised."""
        with self._lock:
            if self._queued:
                return False
        conn = self._connection()
        conn.execute("PRAGMA busy_timeout=0")  # never wait for another process here
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return False
            raise
        finally:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        commit(conn, batches)
        self._committed()
        return True

    def _ended(self, _: Future[None]) -> None:
        with self._lock:
            self._queued -= 1

    async def close(self) -> None:
        """Close the connection after the jobs already submitted; end the thread."""
        try:
            if self.checkpointer is not None:
                self.checkpointer.close()  # at once, or after a checkpoint under way (ms)
            await asyncio.wrap_future(self._pool.submit(self._close))
        finally:
            self._pool.shutdown(wait=False)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self._database, self._uri, BUSY_TIMEOUT_MS, check_same_thread=False)
        return self._conn

    def _transaction(self, batches: Sequence[Batch]) -> None:
        if self._process is not None:
            self._process.transaction(batches)
        else:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            commit(conn, batches)
        self._committed()

    def _committed(self) -> None:
        """A transaction was committed: the log is checkpointed once writes pause."""
        if self.checkpointer is not None:
            self.checkpointer.committed()

    def _close(self) -> None:
        if self._process is not None:
            self._process.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
