"""The store's writer: queued rows written in one transaction, on a thread of their own.

:class:`bot.store.store.Store` reads through aiosqlite; its queued facts are written here, on a
second connection to the same file owned by one worker thread, so that a whole transaction
(``BEGIN IMMEDIATE``, an ``executemany`` per batch, ``COMMIT``) is one hand-off to the thread
instead of a round trip per statement. SQLite releases the GIL while it steps, so a write the
caller does not wait for (:meth:`Writer.write`'s future not awaited, ``Store.flush_behind``) runs
beside the replay that produced it.

A failed transaction is rolled back and its exception raised from the future: nothing of it is
half-written, and the caller puts the rows back in its queue. The log is checkpointed once writes
pause (:mod:`bot.store.checkpoint`), not inside the commit that an order intent may be.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from bot.store.checkpoint import Checkpointer
from bot.store.schema import BUSY_TIMEOUT_MS

Batch = tuple[str, list[tuple[Any, ...]]]  # one statement and the parameters of its rows


class Writer:
    """One connection, one thread; :meth:`write` jobs run in submission order."""

    def __init__(self, database: str, uri: bool = False) -> None:
        self._database, self._uri = database, uri
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._conn: sqlite3.Connection | None = None  # opened, used and closed on the worker thread
        # an in-memory database has no write-ahead log to checkpoint
        self.checkpointer = None if uri and "mode=memory" in database else Checkpointer(database, uri)

    def write(self, batches: Sequence[Batch]) -> Future[None]:
        """Start writing ``batches`` in one transaction; the future says how it ended."""
        return self._pool.submit(self._transaction, batches)

    async def close(self) -> None:
        """Close the connection after the jobs already submitted; end the thread."""
        try:
            if self.checkpointer is not None:
                await asyncio.to_thread(self.checkpointer.close)
            await asyncio.wrap_future(self._pool.submit(self._close))
        finally:
            self._pool.shutdown(wait=False)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            conn = sqlite3.connect(self._database, uri=self._uri, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA synchronous=NORMAL")  # as the reading connection (WAL is the file's)
            self._conn = conn
        return self._conn

    def _transaction(self, batches: Sequence[Batch]) -> None:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in batches:
                conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (a full disk)
                conn.execute("ROLLBACK")
            raise
        if self.checkpointer is not None:
            self.checkpointer.committed()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
