"""The store read once, synchronously, for a one-shot command (``neuralbot status``).

``ReadOnlyStore`` asks what :class:`bot.store.store.Store` opened with ``read_only=True`` would
(the same queries, ``bot.store.schema.select``; the same errors for a file that is not a store or
is from a newer program), through the standard library's ``sqlite3`` alone: no event loop, no
aiosqlite thread, no event classes. It opens the file read-only (``mode=ro``): it never writes
nor migrates, and is safe next to a running daemon (WAL: it never blocks the daemon's writer).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.store.schema import BUSY_TIMEOUT_MS, StoreError, refuse_newer, select, unusable


class ReadOnlyStore:
    """One portfolio of the store, read-only; a context manager that closes it."""

    def __init__(self, db: sqlite3.Connection, portfolio: str) -> None:
        self._db = db
        self.portfolio = portfolio

    @classmethod
    def open(cls, path: Path | str, portfolio: str = "default") -> ReadOnlyStore:
        db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, isolation_level=None)
        try:
            db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            refuse_newer(_user_version(db))
        except StoreError as exc:
            db.close()
            raise StoreError(f"store {path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            db.close()
            if (error := unusable(path, exc)) is None:
                raise
            raise error from None
        except BaseException:
            db.close()
            raise
        return cls(db, portfolio)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ReadOnlyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schema_version(self) -> int:
        return _user_version(self._db)

    def fetch(self, table: str, where: str = "", params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of one of this portfolio's tables as dicts, as ``Store.fetch`` returns them."""
        cur = self._db.execute(*select(table, "*", self.portfolio, where, params))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def load_trading_state(self) -> tuple[str, str] | None:
        rows = self._db.execute("SELECT state, reason FROM trading_state WHERE portfolio = ?",
                                (self.portfolio,)).fetchall()
        return None if not rows else (str(rows[0][0]), str(rows[0][1] or ""))

    def operator_actions(self) -> list[dict[str, Any]]:
        """This portfolio's operator actions (the table exists from schema version 7)."""
        return self.fetch("operator_actions", "id > ?", (0,))


def _user_version(db: sqlite3.Connection) -> int:
    row = db.execute("PRAGMA user_version").fetchone()
    return int(row[0]) if row else 0
