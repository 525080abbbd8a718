"""Restart reconciliation: the exchange is the truth, the store is the memory.

At start-up, in this order:
1. positions are rebuilt from the stored fills and their stops re-armed (stored
   stop, or a fresh one from the entry price) -- before anything else happens;
2. every order the store still thinks is live is looked up by client order id and
   brought up to date (fills recovered, terminal states recorded); an order written
   but never sent is closed, never re-sent;
3. the exchange's open orders and recent trades on our symbols must all belong to
   orders we know; anything else is unexplained;
4. balances are compared with the rebuilt positions: a difference larger than dust
   is unexplained. Any unexplained difference -> HALTED with a clear log line.

The bot trades only what it accounts for: its positions are what its own fills
built, never an exchange balance it cannot explain (no exit, no stop on coins that
are not its own). Where the exchange holds less than that, the position shrinks to
what is there. With a ``stake`` the bot accounts for that much quote (plus what its
fills made or spent) and nothing else on the account: holdings, orders and trades
outside it are left alone and are no mismatch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from bot.core.events import OrderFilled, Side
from bot.execution.exchange import ExchangeExecutor
from bot.core.orders import Out
from bot.store.store import Store
from risk.market import MarketRules
from risk.portfolio import Portfolio, Position
from risk.stops import StopRules

log = structlog.get_logger(__name__)

TRADES_LOOKBACK_MS = 3_600_000  # re-read trades from this long before the last stored fill


@dataclass(slots=True)
class ReconcileReport:
    recovered_fills: int = 0
    closed_orders: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.mismatches


async def rebuild_positions(
    store: Store, stops: StopRules, rules: dict[str, MarketRules]
) -> list[Position]:
    """Positions from the stored fills, with the stored (or a fresh) stop on each open one."""
    scratch = Portfolio(cash=1e18)
    for symbol, r in rules.items():
        scratch.dust[symbol] = r.amount_step or 0.0
    for row in await store.fetch("fills"):
        scratch.apply_fill(OrderFilled(
            row["order_id"], row["trade_id"], row["symbol"], Side(row["side"]), row["amount"],
            row["price"], row["fee"], row["ts"], row["liquidity"] or "taker",
        ))
    stored = {r["symbol"]: r for r in await store.fetch("positions")}
    out = []
    for pos in scratch.positions.values():
        if pos.is_open:
            out.append(protected(pos, stored.get(pos.symbol), stops))
        else:
            out.append(pos)
    return out


def protected(pos: Position, stored: dict[str, Any] | None, stops: StopRules) -> Position:
    """``pos`` with its stop: the stored one if it is still valid, else one from the entry."""
    stop, target = stops.levels(pos.avg_price)
    if stored is not None and stored.get("stop_price") and 0 < stored["stop_price"] < pos.avg_price * 10:
        stop, target = max(stop, stored["stop_price"]), stored.get("take_profit") or target
    return replace(pos, stop_price=stop, take_profit=target, trail_pct=stops.trailing_stop_pct)


async def sync_orders(
    executor: ExchangeExecutor, symbols: Iterable[str], report: ReconcileReport, last_fill_ts: dict[str, int],
    outside: bool = False,
) -> Out:
    """Resolve our live orders, then account for every open order and trade on ``symbols``;
    ``outside``: the account also holds what is not ours (a stake): theirs is no mismatch."""
    facts: Out = []
    for rec in executor.live_orders():
        got = await executor.resolve(rec)
        report.closed_orders += sum(1 for f in got if not isinstance(f, OrderFilled))
        facts += got
    by_exchange_id = {r.exchange_order_id: r for r in executor.orders.values() if r.exchange_order_id}
    for symbol in symbols:
        for order in await executor.call(executor.client.fetch_open_orders, symbol):
            if str(order.get("clientOrderId") or "") not in executor.orders:
                problem = f"open order {order.get('id')} ({order.get('clientOrderId')}) on {symbol} is not ours"
                note(report, problem, outside)
        since = last_fill_ts.get(symbol)
        trades = await executor.call(
            executor.client.fetch_my_trades, symbol,
            None if since is None else since - TRADES_LOOKBACK_MS, 1000,
        )
        for t in trades:
            rec = by_exchange_id.get(str(t.get("order")))
            if rec is None:
                note(report, f"trade {t.get('id')} on {symbol} belongs to no order of ours", outside)
                continue
            got = executor.fills_from(rec, [t], int(t.get("timestamp") or 0))
            report.recovered_fills += len(got)
            facts += got
    return facts


def note(report: ReconcileReport, problem: str, outside: bool) -> None:
    """A mismatch, or (``outside``: the account is not all ours) something left alone."""
    if outside:
        log.info("reconcile_outside_left_alone", detail=problem)
    else:
        report.mismatches.append(problem)


def compare_balances(
    portfolio: Portfolio, balance: dict[str, Any], rules: dict[str, MarketRules],
    markets: dict[str, dict[str, Any]], report: ReconcileReport, outside: bool = False,
    fills: Iterable[dict[str, Any]] = (),
) -> None:
    """Held amounts vs the exchange's. An excess is never adopted (not ours: left alone; a
    mismatch unless ``outside`` holdings are expected); a shortfall shrinks the position.

    The exchange may hold, beyond the position, the dust the bot's own round trips left there
    (``fills``: the stored fills; see :func:`explained_dust`): dust is accounted for, never a
    position; anything else either side of that range (within the lot tolerance) is a mismatch."""
    totals = balance.get("total") or {}
    rows = list(fills)
    for symbol, r in rules.items():
        base = markets[symbol]["base"]
        exchange_amount = float(totals.get(base) or 0.0)
        pos = portfolio.position(symbol)
        price = portfolio.last_price.get(symbol) or pos.avg_price
        tolerance = r.dust(price) if price > 0 else (r.amount_step or 0.0)
        held = pos.amount + explained_dust(symbol, rows, pos.amount, tolerance)
        if pos.amount - tolerance <= exchange_amount <= held + tolerance or (outside and exchange_amount > held):
            continue
        problem = f"{symbol}: we hold {held:.8f} {base}, the exchange says {exchange_amount:.8f}"
        report.mismatches.append(problem)
        if exchange_amount < pos.amount:  # ours went missing: hold only what is there
            if exchange_amount > tolerance:
                portfolio.restore(replace(pos, amount=exchange_amount))
            else:
                portfolio.restore(Position(symbol, realized_pnl=pos.realized_pnl))


def explained_dust(symbol: str, fills: Iterable[dict[str, Any]], position: float, per_close: float) -> float:
    """The base amount the bot's own fills left on the exchange beyond its ``position``: the
    remainders below the lot size written off when positions closed. At most ``per_close`` (the
    largest untradeable amount) per sell; anything more is not dust and explains nothing (0)."""
    bought = sold = 0.0
    sells = 0
    for row in fills:
        if row["symbol"] == symbol:
            if row["side"] == Side.SELL.value:
                sold += row["amount"]
                sells += 1
            else:
                bought += row["amount"]
    extra = bought - sold - position
    return extra if 0.0 < extra <= sells * per_close else 0.0


def accounted_cash(stake: float, fills: Iterable[dict[str, Any]]) -> float:
    """Quote the bot accounts for: its stake plus what its own fills made or spent (fees included)."""
    cash = stake
    for row in fills:
        value = row["amount"] * row["price"]
        cash += value - row["fee"] if row["side"] == Side.SELL.value else -(value + row["fee"])
    return cash


def last_fill_ts(rows: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for row in rows:
        out[row["symbol"]] = max(out.get(row["symbol"], 0), int(row["ts"]))
    return out
