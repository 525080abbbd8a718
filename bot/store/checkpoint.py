"""WAL checkpoints once the store's writes pause, off the write path.

SQLite checkpoints a WAL database from inside the ``COMMIT`` that grows the log past
``wal_autocheckpoint`` pages (1000): that one commit also copies the log into the database file
and syncs it, 10-20 ms instead of a fraction of one. On a live bot that commit is as likely as
any to be the order intent written before the order request leaves, so the order waits for the
checkpoint. The :class:`Checkpointer` checkpoints instead once writes have paused for
``idle_s`` (after a bar's writes, before the next bar), ``PASSIVE`` (it waits for no reader or
writer) and on a connection and thread of its own, so the log never grows to the automatic
threshold while writes come in bursts; the log is then started over (its header synced) before
the next burst. A writer that never pauses (a backtest writing behind its
replay) still checkpoints automatically, as before. Durability is unchanged: a committed
transaction is in the log either way; a checkpoint only copies it into the database file.
"""

from __future__ import annotations

import sqlite3
import threading

import structlog

from bot.store.schema import BUSY_TIMEOUT_MS

log = structlog.get_logger(__name__)

IDLE_S = 0.05  # a pause in writes this long is taken for the end of a burst


class Checkpointer:
    """``PASSIVE`` checkpoints ``idle_s`` after the last of a burst of commits (:meth:`committed`)."""

    def __init__(self, database: str, uri: bool = False, idle_s: float = IDLE_S) -> None:
        self._database, self._uri, self._idle_s = database, uri, idle_s
        self._cond = threading.Condition()
        self._commits = 0  # since the last checkpoint
        self._closed = False
        self._thread: threading.Thread | None = None  # started by the first commit
        self.checkpoints = 0  # checkpoints run (tests, diagnostics)

    def committed(self) -> None:
        """A transaction was committed: checkpoint once writes pause."""
        with self._cond:
            if self._closed:
                return
            self._commits += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="store-checkpoint", daemon=True)
                self._thread.start()
            self._cond.notify()

    def close(self) -> None:
        """End the thread (after a checkpoint under way); nothing is checkpointed any more."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while self._pause():
                if conn is None:
                    conn = sqlite3.connect(self._database, uri=self._uri, isolation_level=None,
                                           check_same_thread=False)
                    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
                try:
                    busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if not busy and frames > 0 and copied == frames:
                        _restart_log(conn)
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # the next pause tries again; the log only grows meanwhile
                    log.warning("store_checkpoint_failed", error=repr(exc))
        finally:
            if conn is not None:
                conn.close()

    def _pause(self) -> bool:
        """Wait for commits followed by ``idle_s`` without one; ``False`` once closed."""
        with self._cond:
            while not self._commits and not self._closed:
                self._cond.wait()
            seen = -1
            while not self._closed and self._commits != seen:
                seen = self._commits
                self._cond.wait(self._idle_s)
            self._commits = 0
            return not self._closed


def _restart_log(conn: sqlite3.Connection) -> None:
    """Start the checkpointed log over now, with a write that changes nothing (the schema version
    rewritten as it is, under the write lock): the first write into a reused log syncs its header
    (``synchronous=NORMAL``), and it must not be the next commit, which may be an order intent."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.execute(f"PRAGMA user_version={version}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
