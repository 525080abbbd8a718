"""The trial ledger: every configuration evaluated, with its returns (the store's ``trials`` table).

The statistics that say how much of a winner is luck need what no single run
knows: how many configurations were tried on the same series and how far apart
their Sharpe ratios were. ``hyperopt`` (each trial, inner span, and the chosen one
on the outer span), ``walkforward`` and ``evaluate`` (each strategy) all append
here; nothing is ever deleted or updated.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
import numpy as np

from bot.store.schema import migrate, prepare_writable


@dataclass(frozen=True, slots=True)
class TrialRecord:
    study: str  # a hyperopt study name, or "walkforward" / "evaluate"
    source: str  # hyperopt | walkforward | evaluate
    span: str  # inner | outer | oos
    strategy: str
    symbol: str
    timeframe: str
    params: dict[str, Any]
    seed: int | None
    data_from: int  # first and last bar (ms) of the span scored
    data_to: int
    data_hash: str
    returns: tuple[float, ...]  # daily returns over the span scored
    metrics: dict[str, Any]
    created_ms: int

    @property
    def params_hash(self) -> str:
        return params_hash(self.params)


def params_hash(params: dict[str, Any]) -> str:
    blob = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def data_hash(ts: np.ndarray, close: np.ndarray) -> str:
    """A digest of the bars a figure was computed from (times and closes)."""
    h = hashlib.sha256(np.ascontiguousarray(ts, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(close, dtype=np.float64).tobytes())
    return h.hexdigest()[:16]


class TrialLedger:
    """Append and read trials in the SQLite file of ``[store] path``."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: Path | str) -> TrialLedger:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path), isolation_level=None)
        try:  # the connection's thread must end on every failure, or the process never exits
            await prepare_writable(db)
            await migrate(db)
        except BaseException:
            await db.close()
            raise
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    async def add(self, records: list[TrialRecord]) -> None:
        rows = [(r.study, r.source, r.span, r.strategy, r.symbol, r.timeframe, r.params_hash,
                 json.dumps(r.params, sort_keys=True, default=str), r.seed, r.data_from, r.data_to,
                 r.data_hash, json.dumps([_finite(x) for x in r.returns]),
                 json.dumps(r.metrics, sort_keys=True, default=str), r.created_ms) for r in records]
        await self._db.execute("BEGIN IMMEDIATE")
        try:
            await self._db.executemany(
                "INSERT INTO trials (study, source, span, strategy, symbol, timeframe, params_hash,"
                " params_json, seed, data_from, data_to, data_hash, returns_json, metrics_json, created_ms)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
            await self._db.execute("COMMIT")
        except BaseException:
            await self._db.execute("ROLLBACK")
            raise

    async def trials(self, *, study: str | None = None, span: str | None = None,
                     symbol: str | None = None, timeframe: str | None = None) -> list[dict[str, Any]]:
        where, params = [], []
        for col, val in (("study", study), ("span", span), ("symbol", symbol), ("timeframe", timeframe)):
            if val is not None:
                where.append(f"{col} = ?")
                params.append(val)
        sql = "SELECT * FROM trials" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        async with self._db.execute(sql, params) as cur:
            cols = [c[0] for c in cur.description]
            rows = [dict(zip(cols, r, strict=True)) for r in await cur.fetchall()]
        for r in rows:
            r["params"] = json.loads(r.pop("params_json"))
            r["returns"] = [float("nan") if x is None else x for x in json.loads(r.pop("returns_json"))]
            r["metrics"] = json.loads(r.pop("metrics_json"))
        return rows


def read_trials(path: Path | str, **where: Any) -> list[dict[str, Any]]:
    """:meth:`TrialLedger.trials` of the ledger at ``path``, for synchronous callers."""
    async def go() -> list[dict[str, Any]]:
        ledger = await TrialLedger.open(path)
        try:
            return await ledger.trials(**where)
        finally:
            await ledger.close()
    return asyncio.run(go())


def append_trials(path: Path | str, records: list[TrialRecord]) -> None:
    """:meth:`TrialLedger.add` to the ledger at ``path``, for synchronous callers."""
    async def go() -> None:
        ledger = await TrialLedger.open(path)
        try:
            await ledger.add(records)
        finally:
            await ledger.close()
    if records:
        asyncio.run(go())


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
