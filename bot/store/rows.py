"""Queued rows: the statement and parameters that store each fact, and their grouping into the
``executemany`` batches of one transaction (written by :class:`bot.store.writer.Writer`)."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import fields
from typing import Any

from bot.core.events import (
    EquitySnapshot,
    Fact,
    OrderDenied,
    OrderFilled,
    OrderIntent,
    OrderSubmitted,
    PositionChanged,
    Signal,
    SignalExplained,
    StrategyFailed,
    TradingStateChanged,
)
from bot.store.writer import Batch

Row = tuple[str, tuple[Any, ...]]  # one statement and its parameters


def fact_row(p: str, item: Fact | Signal) -> Row:
    """The statement and parameters that store ``item`` under portfolio ``p``."""
    if isinstance(item, EquitySnapshot):  # one per bar: the commonest row first
        return (
            "INSERT OR REPLACE INTO equity (portfolio, ts, cash, equity, exposure, heat)"
            " VALUES (?,?,?,?,?,?)",
            (p, item.ts, item.cash, item.equity, item.exposure, item.heat),
        )
    if isinstance(item, Signal):
        return (
            "INSERT OR REPLACE INTO signals VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                p, item.signal_id, item.strategy, item.symbol, item.timeframe, item.ts,
                item.direction.value, item.strength, item.probability,
                item.confidence_low, item.confidence_high, item.horizon, item.risk_level,
                item.size_pct, _json(item.votes), _json(item.attributions),
                item.reason,
            ),
        )
    if isinstance(item, SignalExplained):
        return (
            "UPDATE signals SET attributions_json = ? WHERE portfolio = ? AND signal_id = ?",
            (json.dumps(item.attributions), p, item.signal_id),
        )
    if isinstance(item, OrderSubmitted):
        return (
            "INSERT INTO orders (portfolio, order_id, intent_id, symbol, side, amount,"
            " order_type, price, status, exchange_order_id, ts, leg, updated_ms)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (portfolio, order_id) DO UPDATE SET"
            " exchange_order_id = excluded.exchange_order_id, updated_ms = excluded.updated_ms",
            (
                p, item.order_id, item.intent_id, item.symbol, item.side.value, item.amount,
                item.order_type.value, item.price, "submitted", item.exchange_order_id,
                item.ts, item.intent_id.rsplit(":", 1)[-1], item.ts,
            ),
        )
    if isinstance(item, OrderFilled):
        return (
            "INSERT OR IGNORE INTO fills VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                p, item.trade_id, item.order_id, item.symbol, item.side.value, item.amount,
                item.price, item.fee, item.ts, item.liquidity,
            ),
        )
    if isinstance(item, OrderDenied):
        # Denials are stored through record_decision (with the intent); keep the fact too.
        return (
            "INSERT INTO risk_decisions (portfolio, intent_id, symbol, ts, approved,"
            " check_name, reason, intent_json) VALUES (?,?,?,?,0,?,?,'{}')",
            (p, item.intent_id, item.symbol, item.ts, item.check, item.reason),
        )
    if isinstance(item, PositionChanged):
        return (
            "INSERT OR REPLACE INTO positions VALUES (?,?,?,?,?,?,?,?)",
            (
                p, item.symbol, item.amount, item.avg_price, item.stop_price,
                item.take_profit, item.realized_pnl, item.ts,
            ),
        )
    if isinstance(item, StrategyFailed):
        return (
            "INSERT INTO strategy_failures (portfolio, strategy, symbol, ts, call, error, consecutive,"
            " disabled) VALUES (?,?,?,?,?,?,?,?)",
            (p, item.strategy, item.symbol, item.ts, item.call, item.error, item.consecutive,
             int(item.disabled)),
        )
    if isinstance(item, TradingStateChanged):
        return (
            "INSERT INTO trading_state_changes (portfolio, ts, old, new, reason) VALUES (?,?,?,?,?)",
            (p, item.ts, item.old, item.new, item.reason),
        )
    raise TypeError(f"cannot store {type(item).__name__}")


def decision_row(portfolio: str, intent: OrderIntent, denial: OrderDenied | None) -> Row:
    """The gate's decision on ``intent`` (approved, or ``denial``) with the intent itself."""
    return (
        "INSERT INTO risk_decisions (portfolio, intent_id, symbol, ts, approved,"
        " check_name, reason, intent_json) VALUES (?,?,?,?,?,?,?,?)",
        (
            portfolio,
            intent.intent_id,
            intent.symbol,
            intent.ts,
            0 if denial else 1,
            denial.check if denial else None,
            denial.reason if denial else None,
            _intent_json({name: getattr(intent, name) for name in _INTENT_FIELDS}),
        ),
    )


# an intent is flat (strings, numbers, enums): its fields as they are, no dataclasses.asdict deep copy
_INTENT_FIELDS = tuple(f.name for f in fields(OrderIntent))
# json.dumps(..., default=str) builds an encoder per call; one built once encodes the same bytes
_intent_json = json.JSONEncoder(default=str).encode
_TABLE = re.compile(r"\b(?:INTO|UPDATE|FROM)\s+(\w+)", re.IGNORECASE)


def _json(d: dict[str, Any]) -> str:
    return json.dumps(d) if d else "{}"  # most signals carry none: skip the encoder


@functools.lru_cache(maxsize=256)
def _table_of(sql: str) -> str:
    """The table a statement writes (its text when none is named); a handful of distinct statements."""
    match = _TABLE.search(sql)
    return match.group(1) if match else sql


def batches(rows: list[Row]) -> list[Batch]:
    """Group rows into executemany batches: per table in queue order, consecutive same-SQL runs.

    Rows of different tables are independent; rows of one table keep their order
    (an order's status update never runs before the order's insert).
    """
    per_table: dict[str, list[tuple[str, list[tuple[Any, ...]]]]] = {}
    for sql, params in rows:
        runs = per_table.setdefault(_table_of(sql), [])
        if runs and runs[-1][0] == sql:
            runs[-1][1].append(params)
        else:
            runs.append((sql, [params]))
    return [run for runs in per_table.values() for run in runs]
