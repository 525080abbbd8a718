"""SQLite persistence (aiosqlite, WAL). With ``bot.store.read``, ``rows`` and ``schema`` (and the
writer's process, ``bot.store.writer_child``), the only code that speaks SQL. Schema versioned by
``PRAGMA user_version``, upgraded by the ordered ``MIGRATIONS`` (:mod:`bot.store.schema`). Everything
is scoped by a ``portfolio`` key: a backtest writes under a fresh one, a daemon under its configured,
stable one so that a restart resumes where it stopped.

Facts are queued with ``record`` (their rows: :mod:`bot.store.rows`) and written together by ``flush``
in one transaction by the writer (``bot.store.writer``: in a process of its own, a few rows on the
caller's thread; hot paths stay fast). ``flush_behind`` starts that write without waiting for it (a
backtest's replay goes on beside it; while one such write is under way, the rows wait for the next);
every later call into the store waits for them first, so reads see every row and a failed write is
raised there. ``record_now`` queues and flushes at once, for money paths that must be durable before
the next step (an order intent is on disk before the request leaves).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, wait
from pathlib import Path
from typing import Any

import aiosqlite

from bot.core.events import Candle, Fact, OrderDenied, OrderIntent, Signal
from bot.core.orders import TERMINAL
from bot.store.schema import (
    BUSY_TIMEOUT_MS,
    MIGRATIONS,
    SCHEMA_VERSION,
    StoreError,
    migrate,
    prepare_writable,
    select,
    unusable,
    user_version,
)
from bot.store.rows import Row, batches, decision_row, fact_row
from bot.store.writer import Batch, Writer
from risk.breakers import BreakerMemory

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Store", "StoreError", "migrate"]

BEHIND_MAX_ROWS = 50_000  # queued while a write behind is under way, before flush_behind waits for it
WRITE_HERE_ROWS = 16  # a waited-for flush this small is written on the caller's thread (Writer.write_here)
TERMINAL_STATUSES = tuple(sorted(s.value for s in TERMINAL))  # orders.status that never change
_MEMORY_DBS = itertools.count()  # names of in-memory stores (shared by the store's two connections)


class Store:
    def __init__(self, db: aiosqlite.Connection, portfolio: str, writer: Writer | None = None) -> None:
        self._conn = db  # reads, migrations, candles; use through ``_ready``
        self._writer = writer  # queued rows (``None``: a read-only store)
        self.portfolio = portfolio
        self._pending: list[Row] = []
        self._behind: tuple[Future[None], list[Row]] | None = None
        self._deferred = False  # a flush_behind left rows queued (``_ready`` writes them)

    # -- lifecycle ---------------------------------------------------------------

    @classmethod
    async def open(
        cls, path: Path | str, portfolio: str = "default", target_version: int = SCHEMA_VERSION,
        read_only: bool = False,
    ) -> Store:
        """Open (creating and migrating) the store; ``read_only``: never write, never migrate."""
        if read_only:
            db = await aiosqlite.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True, isolation_level=None)
        else:
            if str(path) == ":memory:":  # both connections must see one database
                database, uri = f"file:store-{next(_MEMORY_DBS)}?mode=memory&cache=shared", True
            else:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                database, uri = str(path), False
            db = await aiosqlite.connect(database, uri=uri, isolation_level=None)
        try:  # the connection's thread must end on every failure, or the process never exits
            if read_only:
                await db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            else:
                await prepare_writable(db)
            await migrate(db, 0 if read_only else target_version)
        except StoreError as exc:
            await db.close()
            raise StoreError(f"store {path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            await db.close()
            if (error := unusable(path, exc)) is None:
                raise
            raise error from None
        except BaseException:
            await db.close()
            raise
        return cls(db, portfolio, None if read_only else Writer(database, uri))

    async def close(self) -> None:
        """Flush what is queued and close; the connections close even when the flush fails."""
        try:
            await self.flush()
        finally:
            try:
                if self._writer is not None:
                    await self._writer.close()
            finally:
                await self._conn.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def schema_version(self) -> int:
        return await user_version(await self._ready())

    # -- queued facts ----------------------------------------------------------------

    def record(self, item: Fact | Signal) -> None:
        """Queue a fact or signal for the next ``flush``."""
        self._pending.append(fact_row(self.portfolio, item))

    def record_decision(self, intent: OrderIntent, denial: OrderDenied | None) -> None:
        self._pending.append(decision_row(self.portfolio, intent, denial))

    async def record_now(self, item: Fact | Signal) -> None:
        self.record(item)
        await self.flush()

    async def flush(self) -> int:
        """Write every queued row in one transaction; returns the number written."""
        self._deferred = False  # written here, with the rest
        await self._ready()
        if not self._pending:
            return 0
        rows, grouped = self._pending, batches(self._pending)
        # a few rows (an order intent and what came with it) are written here: no thread hand-off
        if len(rows) <= WRITE_HERE_ROWS and self._writer is not None and self._writer.write_here(grouped):
            self._pending = []
            return len(rows)
        await self._settle(self._start_write(grouped), rows)
        return len(rows)

    async def flush_behind(self) -> None:
        """Start writing every queued row in one transaction and return without waiting for it;
        every later call waits for it first. While the previous such write is still under way the
        rows stay queued for the next call (up to ``BEHIND_MAX_ROWS``; then it waits): the
        replay goes on instead of waiting for the writer."""
        if self._behind is not None and not self._behind[0].done() and len(self._pending) < BEHIND_MAX_ROWS:
            self._deferred = True
            return
        self._deferred = False  # written now, with the rest
        await self._ready()
        if self._pending:
            rows = self._pending
            self._behind = (self._start_write(batches(rows)), rows)

    def _start_write(self, grouped: list[Batch]) -> Future[None]:
        """Hand the queued rows, ``grouped`` into batches, to the writer's thread."""
        if self._writer is None:
            raise StoreError("a read-only store cannot write")
        self._pending = []
        return self._writer.write(grouped)

    async def _settle(self, write: Future[None], rows: list[Row]) -> None:
        """Wait for ``write``; when it failed (or never ran), ``rows`` go back to the queue."""
        try:
            await asyncio.wrap_future(write)
        except asyncio.CancelledError:
            # the write may be under way on its thread: its own outcome decides (a committed
            # transaction queued again would be written twice); it is a transaction, ms long
            if not write.cancelled():
                wait([write])
            if write.cancelled() or write.exception() is not None:
                self._pending = rows + self._pending
            raise
        except BaseException:
            self._pending = rows + self._pending  # nothing is lost; retry on the next flush
            raise

    async def _ready(self) -> aiosqlite.Connection:
        """The reading connection, once every row :meth:`flush_behind` was given is written (a
        failure is raised here, its rows queued again)."""
        if self._behind is not None:
            behind, self._behind = self._behind, None
            await self._settle(*behind)
        if self._deferred:  # rows a flush_behind left queued while that write was under way
            self._deferred = False
            if rows := self._pending:
                await self._settle(self._start_write(batches(rows)), rows)
        return self._conn

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with (await self._ready()).execute(sql, tuple(params)) as cur:
            return list(await cur.fetchall())

    async def _dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        async with (await self._ready()).execute(sql, tuple(params)) as cur:
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]

    async def set_order_status(self, order_id: str, status: str, ts: int) -> None:
        """Queue an order's new status (partially_filled, filled, canceled, rejected, expired);
        a terminal status never changes again."""
        self._pending.append(
            (
                "UPDATE orders SET status = ?, updated_ms = ? WHERE portfolio = ? AND order_id = ?"
                f" AND status NOT IN ({', '.join(repr(s) for s in TERMINAL_STATUSES)})",
                (status, ts, self.portfolio, order_id),
            )
        )

    async def expire_open_orders(self, ts: int) -> list[str]:
        """Mark every order still stored as live ``expired`` (a paper venue that died with its
        process: nothing of it can fill any more); returns their ids."""
        await self.flush()
        terminal = ", ".join(repr(s) for s in TERMINAL_STATUSES)
        ids = [str(r[0]) for r in await self._rows(
            f"SELECT order_id FROM orders WHERE portfolio = ? AND status NOT IN ({terminal})", (self.portfolio,))]
        for order_id in ids:
            await self.set_order_status(order_id, "expired", ts)
        await self.flush()
        return ids

    # -- runs ---------------------------------------------------------------------

    async def start_run(self, run_id: str, mode: str, started_ms: int, config: dict[str, Any]) -> None:
        self._pending.append((
            "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?)",
            (run_id, self.portfolio, mode, started_ms, json.dumps(config, default=str)),
        ))
        await self.flush()

    # -- candles ------------------------------------------------------------------

    async def upsert_candles(self, candles: Iterable[Candle]) -> int:
        """Insert candles, ignoring ones already stored; returns how many were new."""
        rows = [
            (c.exchange, c.symbol, c.timeframe, c.ts, c.open, c.high, c.low, c.close, c.volume)
            for c in candles
        ]
        if not rows:
            return 0
        db = await self._ready()
        before = db.total_changes
        await db.execute("BEGIN IMMEDIATE")
        try:
            await db.executemany("INSERT OR IGNORE INTO candles VALUES (?,?,?,?,?,?,?,?,?)", rows)
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
        return db.total_changes - before

    async def last_candle_ts(self, exchange: str, symbol: str, timeframe: str) -> int | None:
        rows = await self._rows("SELECT MAX(ts) FROM candles WHERE exchange = ? AND symbol = ? AND timeframe = ?",
                                (exchange, symbol, timeframe))
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    async def load_candles(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        since: int | None = None,
        until: int | None = None,
    ) -> list[Candle]:
        """Stored candles in ``[since, until)``, in time order."""
        rows = await self._rows(
            "SELECT ts, open, high, low, close, volume FROM candles"
            " WHERE exchange = ? AND symbol = ? AND timeframe = ? AND ts >= ? AND ts < ?"
            " ORDER BY ts",
            (exchange, symbol, timeframe, since if since is not None else -(2**62),
             until if until is not None else 2**62),
        )
        return [Candle(exchange, symbol, timeframe, *r) for r in rows]

    # -- queries --------------------------------------------------------------------

    async def fetch(self, table: str, where: str = "", params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of one of this portfolio's tables as dicts (for reports, status, tests)."""
        return await self._dicts(*self._select(table, "*", where, params))

    async def column(self, table: str, column: str) -> list[Any]:
        """One column of this portfolio's rows of ``table``, in :meth:`fetch`'s order: a backtest's
        equity curve without a dict per bar."""
        if not column.isidentifier():
            raise ValueError(f"not a column name: {column!r}")
        return [r[0] for r in await self._rows(*self._select(table, column))]

    def _select(self, table: str, what: str, where: str = "", params: Sequence[Any] = ()
                ) -> Row:
        return select(table, what, self.portfolio, where, params)

    async def count(self, table: str) -> int:
        return len(await self.fetch(table))

    # -- execution (v3): exchange orders and trading state ------------------------------

    EXCHANGE_ORDER_COLUMNS: tuple[str, ...] = (
        "client_order_id", "intent_id", "signal_id", "symbol", "side", "leg", "order_type",
        "amount", "price", "reduce_only", "stop_price", "take_profit", "state",
        "exchange_order_id", "filled", "error", "created_ms", "updated_ms",
    )

    async def save_exchange_order(self, row: dict[str, Any]) -> None:
        """Upsert one exchange order and commit at once, with everything queued before it."""
        cols = self.EXCHANGE_ORDER_COLUMNS
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c != "client_order_id")
        self._pending.append(
            (
                f"INSERT INTO exchange_orders (portfolio, {', '.join(cols)})"
                f" VALUES (?{', ?' * len(cols)})"
                f" ON CONFLICT (portfolio, client_order_id) DO UPDATE SET {updates}",
                (self.portfolio, *(row[c] for c in cols)),
            )
        )
        await self.flush()

    async def load_exchange_orders(self, states: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """This portfolio's exchange orders (optionally only in ``states``), oldest first."""
        sql = "SELECT * FROM exchange_orders WHERE portfolio = ?"
        params: list[Any] = [self.portfolio]
        if states is not None:
            sql += f" AND state IN ({', '.join('?' * len(states))})"
            params += list(states)
        return await self._dicts(sql + " ORDER BY created_ms, rowid", params)

    async def fill_ids(self) -> set[str]:
        return {r[0] for r in await self._rows("SELECT trade_id FROM fills WHERE portfolio = ?", (self.portfolio,))}

    async def decided_intent_ids(self) -> set[str]:
        return {r[0] for r in await self._rows(
            "SELECT DISTINCT intent_id FROM risk_decisions WHERE portfolio = ?", (self.portfolio,))}

    async def set_trading_state(self, state: str, reason: str, ts: int) -> None:
        self._pending.append(
            (
                "INSERT OR REPLACE INTO trading_state VALUES (?,?,?,?)",
                (self.portfolio, state, reason, ts),
            )
        )
        await self.flush()

    async def load_trading_state(self) -> tuple[str, str] | None:
        rows = await self._rows("SELECT state, reason FROM trading_state WHERE portfolio = ?", (self.portfolio,))
        return None if not rows else (str(rows[0][0]), str(rows[0][1] or ""))

    # -- operations (v7): operator actions -------------------------------------------------

    async def record_operator_action(self, action: str, who: str, why: str, ts: int,
                                     detail: dict[str, Any] | None = None,
                                     state: tuple[str, str] | None = None) -> None:
        """Store an operator's action, with the trading ``(state, reason)`` it sets, in one transaction."""
        self._pending.append((
            "INSERT INTO operator_actions (portfolio, ts, who, action, why, detail_json)"
            " VALUES (?,?,?,?,?,?)",
            (self.portfolio, ts, who, action, why, json.dumps(detail or {}, sort_keys=True)),
        ))
        if state is not None:
            self._pending.append(("INSERT OR REPLACE INTO trading_state VALUES (?,?,?,?)",
                                  (self.portfolio, state[0], state[1], ts)))
        await self.flush()

    async def operator_actions(self, after_id: int = 0, pending: bool = False) -> list[dict[str, Any]]:
        """This portfolio's operator actions after ``after_id`` (``pending``: not yet carried out)."""
        return await self.fetch("operator_actions", "id > ?" + (" AND done_ms IS NULL" if pending else ""),
                                (after_id,))

    async def operator_action_done(self, action_id: int, ts: int) -> None:
        self._pending.append(("UPDATE operator_actions SET done_ms = ? WHERE portfolio = ? AND id = ?",
                              (ts, self.portfolio, action_id)))
        await self.flush()

    # -- risk (v4): circuit breaker memory -----------------------------------------------

    def record_breakers(self, memory: BreakerMemory, ts: int) -> None:
        """Queue the breakers' day, day-start equity and equity peak (one row per portfolio)."""
        self._pending.append(
            (
                "INSERT OR REPLACE INTO breaker_state VALUES (?,?,?,?,?,?)",
                (self.portfolio, memory.day, memory.day_start_equity, memory.peak_equity,
                 memory.reducing_day, ts),
            )
        )

    async def load_breakers(self) -> BreakerMemory | None:
        rows = await self._rows("SELECT day, day_start_equity, peak_equity, reducing_day FROM breaker_state"
                                " WHERE portfolio = ?", (self.portfolio,))
        if not rows:
            return None
        row = rows[0]
        return BreakerMemory(
            None if row[0] is None else int(row[0]), float(row[1]), float(row[2]),
            None if row[3] is None else int(row[3]),
        )

    # -- cockpit (v7): paused symbols --------------------------------------------------------

    async def set_pause(self, symbol: str, reason: str | None, ts: int) -> None:
        """Pause new entries on ``symbol`` (``reason``), or lift the pause (``None``)."""
        if reason is None:
            self._pending.append(("DELETE FROM symbol_pauses WHERE portfolio = ? AND symbol = ?",
                                  (self.portfolio, symbol)))
        else:
            self._pending.append(("INSERT OR REPLACE INTO symbol_pauses VALUES (?,?,?,?)",
                                  (self.portfolio, symbol, reason, ts)))
        await self.flush()

    async def load_pauses(self) -> dict[str, str]:
        rows = await self._rows("SELECT symbol, reason FROM symbol_pauses WHERE portfolio = ? ORDER BY symbol",
                                (self.portfolio,))
        return {str(r[0]): str(r[1]) for r in rows}
