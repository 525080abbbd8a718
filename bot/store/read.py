"""The read side of the store for the operator's cockpit (REST API, Telegram, ``neuralbot plot``).

A ``StoreReader`` holds its own read-only SQLite connection (WAL: readers never block
the daemon's writer, nor it them) and answers paged, filtered queries of one
portfolio (callers bound the page sizes). It never writes: every change goes through
the Engine and ``bot.store.store``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiosqlite

from bot.core.events import Candle
from bot.store.schema import BUSY_TIMEOUT_MS

OPEN_EXCHANGE_STATES = ("new", "submitted", "accepted", "partially_filled")


def _loads(raw: str | None) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {}


class StoreReader:
    def __init__(self, db: aiosqlite.Connection, portfolio: str) -> None:
        self._db = db
        self.portfolio = portfolio

    @classmethod
    async def open(cls, path: Path | str, portfolio: str) -> StoreReader:
        db = await aiosqlite.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
        await db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return cls(db, portfolio)

    async def close(self) -> None:
        await self._db.close()

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        async with self._db.execute(sql, tuple(params)) as cur:
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in await cur.fetchall()]

    def _where(self, symbol: str | None, since: int | None, until: int | None,
               extra: str = "") -> tuple[str, list[Any]]:
        clauses, params = ["portfolio = ?"], [self.portfolio]
        if symbol:
            clauses.append("symbol = ?")
            params.append(symbol)
        if since is not None:
            clauses.append("ts >= ?")
            params.append(since)
        if until is not None:
            clauses.append("ts < ?")
            params.append(until)
        if extra:
            clauses.append(extra)
        return " AND ".join(clauses), params

    # -- trades and orders ---------------------------------------------------------------

    async def trades(self, symbol: str | None = None, since: int | None = None, until: int | None = None,
                     limit: int = 100, offset: int = 0) -> tuple[int, list[dict[str, Any]]]:
        """Fills, newest first, with the leg of their order; and how many match in all."""
        where, params = self._where(symbol, since, until)
        total = (await self._rows(f"SELECT COUNT(*) AS n FROM fills WHERE {where}", params))[0]["n"]
        rows = await self._rows(
            "SELECT f.trade_id, f.order_id, f.symbol, f.side, f.amount, f.price, f.fee, f.ts, f.liquidity,"
            " COALESCE(o.leg, 'entry') AS leg FROM fills f LEFT JOIN orders o"
            " ON o.portfolio = f.portfolio AND o.order_id = f.order_id"
            f" WHERE f.{where.replace(' AND ', ' AND f.')} ORDER BY f.ts DESC, f.rowid DESC LIMIT ? OFFSET ?",
            [*params, limit, offset])
        return int(total), rows

    async def open_orders(self) -> list[dict[str, Any]]:
        """Exchange orders still open; in paper modes, submitted orders not yet fully filled."""
        marks = ", ".join("?" * len(OPEN_EXCHANGE_STATES))
        rows = await self._rows(
            "SELECT client_order_id AS order_id, symbol, side, leg, order_type, amount, price, stop_price,"
            " filled, state AS status, created_ms AS ts FROM exchange_orders"
            f" WHERE portfolio = ? AND state IN ({marks}) ORDER BY created_ms", [self.portfolio, *OPEN_EXCHANGE_STATES])
        if rows:
            return rows
        return await self._rows(
            "SELECT o.order_id, o.symbol, o.side, o.leg, o.order_type, o.amount, o.price, NULL AS stop_price,"
            " COALESCE(SUM(f.amount), 0) AS filled, o.status, o.ts FROM orders o LEFT JOIN fills f"
            " ON f.portfolio = o.portfolio AND f.order_id = o.order_id"
            " WHERE o.portfolio = ? AND o.status = 'submitted' GROUP BY o.order_id"
            " HAVING COALESCE(SUM(f.amount), 0) < o.amount * (1 - 1e-9) ORDER BY o.ts", [self.portfolio])

    # -- signals and decisions ----------------------------------------------------------------

    async def signals(self, symbol: str | None = None, strategy: str | None = None, since: int | None = None,
                      until: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Newest first, each with the risk decision on its entry or exit (why it did or did not trade)."""
        where, params = self._where(symbol, since, until, "strategy = ?" if strategy else "")
        if strategy:
            params.append(strategy)
        rows = await self._rows(f"SELECT * FROM signals WHERE {where} ORDER BY ts DESC LIMIT ?",
                                [*params, limit])
        decisions = await self._decisions([r["signal_id"] for r in rows])
        out = []
        for r in rows:
            d = decisions.get(r["signal_id"])
            prob = r["probability"]
            out.append({
                "signal_id": r["signal_id"], "ts": r["ts"], "strategy": r["strategy"], "symbol": r["symbol"],
                "timeframe": r["timeframe"], "direction": r["direction"], "strength": r["strength"],
                "probability": prob, "confidence_low": r["confidence_low"],
                "confidence_high": r["confidence_high"],
                "edge": None if prob is None else round(prob - 0.5, 6), "size_pct": r["size_pct"],
                "risk_level": r["risk_level"] or "", "votes": _loads(r["votes_json"]),
                "attributions": _loads(r["attributions_json"]), "reason": r["reason"] or "",
                "decision": d,
            })
        return out

    async def _decisions(self, signal_ids: list[str]) -> dict[str, dict[str, Any]]:
        if not signal_ids:
            return {}
        marks = ", ".join("?" * len(signal_ids))
        rows = await self._rows(
            "SELECT json_extract(intent_json, '$.signal_id') AS signal_id, intent_id, approved, check_name,"
            f" reason FROM risk_decisions WHERE portfolio = ? AND json_extract(intent_json, '$.signal_id')"
            f" IN ({marks}) ORDER BY id", [self.portfolio, *signal_ids])
        return {r["signal_id"]: {"intent_id": r["intent_id"], "approved": bool(r["approved"]),
                                 "check": r["check_name"], "reason": r["reason"]} for r in rows}

    async def denials(self, since: int | None = None, limit: int = 50) -> dict[str, Any]:
        where, params = self._where(None, since, None, "approved = 0")
        by_check = await self._rows(
            f"SELECT check_name AS check_, COUNT(*) AS n FROM risk_decisions WHERE {where}"
            " GROUP BY check_name ORDER BY n DESC", params)
        recent = await self._rows(
            f"SELECT intent_id, symbol, ts, check_name AS \"check\", reason FROM risk_decisions WHERE {where}"
            " ORDER BY id DESC LIMIT ?", [*params, limit])
        return {"by_check": {r["check_"]: r["n"] for r in by_check}, "recent": recent}

    # -- equity and P&L -------------------------------------------------------------------

    async def equity(self, since: int | None = None, until: int | None = None,
                     max_points: int = 2000) -> list[dict[str, Any]]:
        """Equity points with drawdown from the running peak, thinned evenly to ``max_points``."""
        where, params = self._where(None, since, until)
        rows = await self._rows(f"SELECT ts, equity, cash, exposure, heat FROM equity WHERE {where} ORDER BY ts",
                                params)
        peak = 0.0
        for r in rows:
            peak = max(peak, r["equity"])
            r["drawdown_pct"] = round(100.0 * (r["equity"] / peak - 1.0), 6) if peak > 0 else 0.0
        if len(rows) > max_points > 1:
            step = (len(rows) - 1) / (max_points - 1)
            rows = [rows[round(i * step)] for i in range(max_points)]
        return rows

    async def pnl(self, period: str) -> list[dict[str, Any]]:
        """Profit per UTC day or month: the change of the last equity point of each period."""
        fmt = "%Y-%m-%d" if period == "daily" else "%Y-%m"
        rows = await self._rows(
            "SELECT ts, equity FROM equity WHERE portfolio = ? AND ts IN (SELECT MAX(ts) FROM equity"
            f" WHERE portfolio = ? GROUP BY strftime('{fmt}', ts / 1000, 'unixepoch')) ORDER BY ts",
            [self.portfolio, self.portfolio])
        first = await self._rows("SELECT equity FROM equity WHERE portfolio = ? ORDER BY ts LIMIT 1",
                                 [self.portfolio])
        prev = first[0]["equity"] if first else 0.0
        out = []
        for r in rows:
            label = datetime.fromtimestamp(r["ts"] / 1000, timezone.utc).strftime(fmt)
            out.append({"period": label, "equity": r["equity"], "pnl": round(r["equity"] - prev, 8),
                        "pnl_pct": round(100.0 * (r["equity"] / prev - 1.0), 6) if prev > 0 else 0.0})
            prev = r["equity"]
        return out

    async def performance(self) -> list[dict[str, Any]]:
        """Per symbol: realised P&L (positions), fills, volume and fees."""
        fills = await self._rows(
            "SELECT symbol, COUNT(*) AS fills, SUM(amount * price) AS volume, SUM(fee) AS fees"
            " FROM fills WHERE portfolio = ? GROUP BY symbol", [self.portfolio])
        realized = {r["symbol"]: r["realized_pnl"] for r in await self._rows(
            "SELECT symbol, realized_pnl FROM positions WHERE portfolio = ?", [self.portfolio])}
        return sorted(({**r, "realized_pnl": realized.get(r["symbol"], 0.0)} for r in fills),
                      key=lambda r: r["realized_pnl"], reverse=True)

    # -- market data ---------------------------------------------------------------------

    async def candles(self, exchange: str, symbol: str, timeframe: str, since: int | None = None,
                      until: int | None = None, limit: int = 500) -> list[Candle]:
        """The last ``limit`` stored candles in ``[since, until)``, in time order."""
        rows = await self._rows(
            "SELECT * FROM (SELECT ts, open, high, low, close, volume FROM candles WHERE exchange = ?"
            " AND symbol = ? AND timeframe = ? AND ts >= ? AND ts < ? ORDER BY ts DESC LIMIT ?) ORDER BY ts",
            [exchange, symbol, timeframe, since if since is not None else -(2**62),
             until if until is not None else 2**62, limit])
        return [Candle(exchange, symbol, timeframe, r["ts"], r["open"], r["high"], r["low"], r["close"],
                       r["volume"]) for r in rows]

    async def trading_state(self) -> tuple[str, str, int] | None:
        rows = await self._rows("SELECT state, reason, ts FROM trading_state WHERE portfolio = ?",
                                [self.portfolio])
        return (rows[0]["state"], rows[0]["reason"] or "", rows[0]["ts"]) if rows else None

    async def operator_actions(self, limit: int = 50) -> list[dict[str, Any]]:
        """The last ``limit`` operator actions, newest first."""
        rows = await self._rows(
            "SELECT ts, who, action, why, detail_json FROM operator_actions WHERE portfolio = ?"
            " ORDER BY id DESC LIMIT ?", [self.portfolio, limit])
        return [{**{k: r[k] for k in ("action", "who", "why", "ts")}, "detail": _loads(r["detail_json"])}
                for r in rows]
