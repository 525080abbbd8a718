"""The SQLite schema of :mod:`bot.store.store` and its migrations (``PRAGMA user_version``).

Each entry of ``MIGRATIONS`` upgrades the schema by one version and runs in one
transaction; a database newer than this program is refused, never downgraded.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the read-only store (bot.store.readonly) reads it with sqlite3 alone
    import aiosqlite

MIGRATIONS: tuple[str, ...] = (
    # v1: market data, decisions and facts.
    """
    CREATE TABLE candles (
        exchange TEXT NOT NULL, symbol TEXT NOT NULL, timeframe TEXT NOT NULL,
        ts INTEGER NOT NULL, open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL,
        close REAL NOT NULL, volume REAL NOT NULL,
        PRIMARY KEY (exchange, symbol, timeframe, ts)
    ) WITHOUT ROWID;
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY, portfolio TEXT NOT NULL, mode TEXT NOT NULL,
        started_ms INTEGER NOT NULL, config_json TEXT NOT NULL
    );
    CREATE TABLE signals (
        portfolio TEXT NOT NULL, signal_id TEXT NOT NULL, strategy TEXT NOT NULL,
        symbol TEXT NOT NULL, timeframe TEXT NOT NULL, ts INTEGER NOT NULL,
        direction TEXT NOT NULL, strength REAL NOT NULL, probability REAL,
        confidence_low REAL, confidence_high REAL, horizon TEXT, risk_level TEXT,
        size_pct REAL, votes_json TEXT, attributions_json TEXT, reason TEXT,
        PRIMARY KEY (portfolio, signal_id)
    );
    CREATE TABLE risk_decisions (
        id INTEGER PRIMARY KEY AUTOINCREMENT, portfolio TEXT NOT NULL,
        intent_id TEXT NOT NULL, symbol TEXT NOT NULL, ts INTEGER NOT NULL,
        approved INTEGER NOT NULL, check_name TEXT, reason TEXT, intent_json TEXT NOT NULL
    );
    CREATE TABLE orders (
        portfolio TEXT NOT NULL, order_id TEXT NOT NULL, intent_id TEXT NOT NULL,
        symbol TEXT NOT NULL, side TEXT NOT NULL, amount REAL NOT NULL,
        order_type TEXT NOT NULL, price REAL, status TEXT NOT NULL,
        exchange_order_id TEXT, ts INTEGER NOT NULL,
        PRIMARY KEY (portfolio, order_id)
    );
    CREATE TABLE fills (
        portfolio TEXT NOT NULL, trade_id TEXT NOT NULL, order_id TEXT NOT NULL,
        symbol TEXT NOT NULL, side TEXT NOT NULL, amount REAL NOT NULL,
        price REAL NOT NULL, fee REAL NOT NULL, ts INTEGER NOT NULL, liquidity TEXT,
        PRIMARY KEY (portfolio, trade_id)
    );
    CREATE TABLE positions (
        portfolio TEXT NOT NULL, symbol TEXT NOT NULL, amount REAL NOT NULL,
        avg_price REAL NOT NULL, stop_price REAL, take_profit REAL,
        realized_pnl REAL NOT NULL, ts INTEGER NOT NULL,
        PRIMARY KEY (portfolio, symbol)
    );
    CREATE TABLE equity (
        portfolio TEXT NOT NULL, ts INTEGER NOT NULL, cash REAL NOT NULL,
        equity REAL NOT NULL, exposure REAL NOT NULL,
        PRIMARY KEY (portfolio, ts)
    );
    """,
    # v2: orders remember their leg and last update; equity carries portfolio heat.
    """
    ALTER TABLE orders ADD COLUMN leg TEXT NOT NULL DEFAULT 'entry';
    ALTER TABLE orders ADD COLUMN updated_ms INTEGER;
    ALTER TABLE equity ADD COLUMN heat REAL NOT NULL DEFAULT 0;
    CREATE INDEX risk_decisions_by_intent ON risk_decisions (portfolio, intent_id);
    CREATE INDEX fills_by_order ON fills (portfolio, order_id);
    """,
    # v3 (execution): the exchange executor's durable order state machine, written before
    # every request and keyed by the deterministic client order id; the trading state.
    """
    CREATE TABLE exchange_orders (
        portfolio TEXT NOT NULL, client_order_id TEXT NOT NULL, intent_id TEXT NOT NULL,
        signal_id TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL, leg TEXT NOT NULL,
        order_type TEXT NOT NULL, amount REAL NOT NULL, price REAL, reduce_only INTEGER NOT NULL,
        stop_price REAL, take_profit REAL, state TEXT NOT NULL, exchange_order_id TEXT,
        filled REAL NOT NULL DEFAULT 0, error TEXT, created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL,
        PRIMARY KEY (portfolio, client_order_id)
    );
    CREATE INDEX exchange_orders_by_state ON exchange_orders (portfolio, state);
    CREATE TABLE trading_state (
        portfolio TEXT PRIMARY KEY, state TEXT NOT NULL, reason TEXT, ts INTEGER NOT NULL
    );
    """,
    # v4 (risk): the circuit breakers' memory, so a restart cannot reset a drawdown.
    """
    CREATE TABLE breaker_state (
        portfolio TEXT PRIMARY KEY, day INTEGER, day_start_equity REAL NOT NULL,
        peak_equity REAL NOT NULL, reducing_day INTEGER, ts INTEGER NOT NULL
    );
    """,
    # v5 (research): the trial ledger, every configuration evaluated by hyperopt,
    # walkforward or evaluate; its count and spread deflate the winners' Sharpe ratios.
    """
    CREATE TABLE trials (
        id INTEGER PRIMARY KEY AUTOINCREMENT, study TEXT NOT NULL, source TEXT NOT NULL,
        span TEXT NOT NULL, strategy TEXT NOT NULL, symbol TEXT NOT NULL, timeframe TEXT NOT NULL,
        params_hash TEXT NOT NULL, params_json TEXT NOT NULL, seed INTEGER,
        data_from INTEGER NOT NULL, data_to INTEGER NOT NULL, data_hash TEXT NOT NULL,
        returns_json TEXT NOT NULL, metrics_json TEXT NOT NULL, created_ms INTEGER NOT NULL
    );
    CREATE INDEX trials_by_study ON trials (study, span);
    CREATE INDEX trials_by_series ON trials (symbol, timeframe, span);
    """,
    # v6: calls into strategy code that raised (bot.engine.strategy_guard).
    """
    CREATE TABLE strategy_failures (
        id INTEGER PRIMARY KEY AUTOINCREMENT, portfolio TEXT NOT NULL, strategy TEXT NOT NULL,
        symbol TEXT NOT NULL, ts INTEGER NOT NULL, call TEXT NOT NULL, error TEXT NOT NULL,
        consecutive INTEGER NOT NULL, disabled INTEGER NOT NULL
    );
    """,
    # v7 (operations): every operator action on the trading state (halt, resume): who, when,
    # why; ``done_ms`` is set once a daemon carried out what the action asked of it.
    """
    CREATE TABLE operator_actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT, portfolio TEXT NOT NULL, ts INTEGER NOT NULL,
        who TEXT NOT NULL, action TEXT NOT NULL, why TEXT NOT NULL, detail_json TEXT NOT NULL,
        done_ms INTEGER
    );
    CREATE INDEX operator_actions_by_portfolio ON operator_actions (portfolio, id);
    """,
    # v8 (cockpit): symbols whose new entries an operator paused.
    """
    CREATE TABLE symbol_pauses (
        portfolio TEXT NOT NULL, symbol TEXT NOT NULL, reason TEXT NOT NULL, ts INTEGER NOT NULL,
        PRIMARY KEY (portfolio, symbol)
    );
    """,
    # v9 (risk): every change of the trading state, as the fact it is (``TradingStateChanged``).
    """
    CREATE TABLE trading_state_changes (
        id INTEGER PRIMARY KEY AUTOINCREMENT, portfolio TEXT NOT NULL, ts INTEGER NOT NULL,
        old TEXT NOT NULL, new TEXT NOT NULL, reason TEXT NOT NULL
    );
    CREATE INDEX trading_state_changes_by_portfolio ON trading_state_changes (portfolio, ts);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(RuntimeError):
    """The store cannot be used as it is (not SQLite, from a newer program): bad input, exit 2."""


BUSY_TIMEOUT_MS = 5000
# the tables of one portfolio's rows that ``select`` reads
TABLES = frozenset({"signals", "risk_decisions", "orders", "fills", "positions", "equity",
                    "strategy_failures", "operator_actions", "trading_state_changes"})


def select(table: str, what: str, portfolio: str, where: str = "", params: Sequence[Any] = ()
           ) -> tuple[str, tuple[Any, ...]]:
    """The query of ``what`` from ``portfolio``'s rows of ``table`` (``where``: more conditions), in
    the order they were written (positions: by symbol), with its parameters."""
    if table not in TABLES:
        raise ValueError(f"unknown table {table!r}")
    sql = f"SELECT {what} FROM {table} WHERE portfolio = ?"
    if where:
        sql += f" AND ({where})"
    order = "ts, rowid" if table != "positions" else "symbol"
    return sql + f" ORDER BY {order}", (portfolio, *params)


def refuse_newer(version: int) -> None:
    """Raise ``StoreError`` for a schema ``version`` newer than this program's (never downgraded)."""
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"schema version {version} is newer than this program's {SCHEMA_VERSION};"
            " upgrade neuralbot or set another store.path"
        )


def unusable(path: Path | str, exc: sqlite3.DatabaseError) -> StoreError | None:
    """What ``exc``, raised opening the store at ``path``, means: a ``StoreError`` for a file that is
    not an SQLite database, ``None`` for any other failure (locked, unreadable), raised as it is."""
    if isinstance(exc, sqlite3.OperationalError) and "not a database" not in str(exc):
        return None
    return StoreError(f"store {path}: not an SQLite database ({exc}); restore it from a backup"
                      " or set another store.path")


async def prepare_writable(db: aiosqlite.Connection) -> None:
    """Set the busy timeout (first, so every later statement waits its turn), then WAL.

    A new file opened by several processes at once can answer BUSY to the journal-mode change
    without waiting (SQLite skips the busy handler there), so that one is retried up to the timeout.
    """
    await db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.01)
    await db.execute("PRAGMA synchronous=NORMAL")


async def user_version(db: aiosqlite.Connection) -> int:
    async with db.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(db: aiosqlite.Connection, target_version: int = SCHEMA_VERSION) -> int:
    """Apply pending migrations up to ``target_version``; each one atomically."""
    current = await user_version(db)
    refuse_newer(current)
    for version in range(current + 1, target_version + 1):
        script = MIGRATIONS[version - 1]
        statements = [s.strip() for s in script.split(";") if s.strip()]
        await db.execute("BEGIN IMMEDIATE")
        try:
            if await user_version(db) >= version:  # another process migrated while we waited
                await db.execute("COMMIT")
                continue
            for statement in statements:
                await db.execute(statement)
            await db.execute(f"PRAGMA user_version = {version}")
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise
    return max(current, target_version)
