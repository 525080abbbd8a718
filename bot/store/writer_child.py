"""The store writer's process: queued transactions written on a core of their own.

Python's ``sqlite3`` binds every row's parameters holding the GIL, and a thread that needs
the GIL back after each step waits for a busy replay to let go of it: a write "behind" the
replay on a thread of the same process barely moves until the replay stops to wait for it (a
backtest's writes took as long on the thread as on the loop's own thread). In a process of its
own the write runs beside the replay; the parent pays for pickling the rows only.

The parent (:class:`bot.store.writer.Writer`) starts this file with ``python -I -S``: standard
library only, nothing else imported. It reads length-prefixed pickles of batches from stdin
(of plain values only: :mod:`bot.store.writer_process` pickles what ``sqlite3`` would bind)
and writes each as one transaction (``BEGIN IMMEDIATE``, an ``executemany`` per batch,
``COMMIT``; rolled back on failure), then answers ``None`` or what failed (:func:`failure`);
``None`` instead of batches ends it.
Signals from the terminal or a service manager are ignored: the parent owns shutdown, and
its last flush must still be written; the process ends when its stdin closes (the parent
closed the writer, or died) or ``None`` comes.
"""

from __future__ import annotations

import pickle
import signal
import sqlite3
import struct
import sys
from collections.abc import Sequence
from typing import IO, Any

_LENGTH = struct.Struct("<Q")


def send(stream: IO[bytes], message: Any) -> None:
    send_pickled(stream, pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))


def send_pickled(stream: IO[bytes], data: bytes) -> None:
    stream.write(_LENGTH.pack(len(data)) + data)
    stream.flush()


def receive(stream: IO[bytes]) -> Any:
    """The next message; ``EOFError`` when the other side has gone."""
    head = stream.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        raise EOFError("stream closed")
    (n,) = _LENGTH.unpack(head)
    data = stream.read(n)
    if len(data) < n:
        raise EOFError("stream closed")
    return pickle.loads(data)


def failure(exc: BaseException) -> tuple[str, str, int | None, str | None]:
    """What failed, as plain data: (class name, message, SQLite error code, its name)."""
    return (type(exc).__name__, str(exc), getattr(exc, "sqlite_errorcode", None),
            getattr(exc, "sqlite_errorname", None))


def serve(database: str, uri: bool, busy_timeout_ms: int, inp: IO[bytes], out: IO[bytes]) -> None:
    conn: sqlite3.Connection | None = None
    try:
        while True:
            try:
                batches = receive(inp)
            except EOFError:
                return
            if batches is None:  # the parent's last word (a forked copy of it may hold the pipe open)
                return
            answer = None
            try:
                if conn is None:  # here, so that a file it cannot open is answered, not a crash
                    conn = connect(database, uri, busy_timeout_ms)
                conn.execute("BEGIN IMMEDIATE")
                commit(conn, batches)
            except Exception as exc:  # every failure is the parent's to raise; none ends this loop
                answer = failure(exc)
            send(out, answer)
    finally:
        if conn is not None:
            conn.close()


def connect(database: str, uri: bool, busy_timeout_ms: int, check_same_thread: bool = True) -> sqlite3.Connection:
    """A writing connection to the store (each of the writer's, in either process)."""
    conn = sqlite3.connect(database, uri=uri, isolation_level=None, check_same_thread=check_same_thread)
    conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    conn.execute("PRAGMA synchronous=NORMAL")  # as the store's other connections (WAL is the file's)
    return conn


def commit(conn: sqlite3.Connection, batches: Sequence[tuple[str, Sequence[Any]]]) -> None:
    """The rest of a transaction begun on ``conn``: every batch, then ``COMMIT`` (or rollback)."""
    try:
        for sql, rows in batches:
            conn.executemany(sql, rows)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite may have rolled back already (a full disk)
            conn.execute("ROLLBACK")
        raise


def main() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    database, uri, busy = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
    try:
        serve(database, uri, busy, sys.stdin.buffer, sys.stdout.buffer)
    except BrokenPipeError:  # the parent went away while an answer was on its way
        pass


if __name__ == "__main__":
    main()
