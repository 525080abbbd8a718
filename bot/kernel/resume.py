"""Resuming an exchange-mode (sandbox / live) Engine after a restart, before anything trades.

Positions and their stops come first, then the exchange is reconciled (orders, trades,
balances); with ``exchange_stops`` every open position also gets (or keeps) its
exchange-side stop order; the breakers' persisted day-start equity and peak are
restored, so a restart does not reset a drawdown. An unexplained mismatch leaves the
engine HALTED (persisted, so a restart does not quietly resume).

The Engine itself is built by :meth:`bot.kernel.kernel.Kernel.exchange_engine`, which calls
:func:`resume_exchange`; a paper Engine resumes from the store alone
(:mod:`bot.kernel.paper_restart`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from bot.engine.engine import Engine
from bot.execution.exchange import ExchangeExecutor
from bot.core.orders import OrderState
from bot.execution.reconcile import (
    ReconcileReport,
    accounted_cash,
    compare_balances,
    last_fill_ts,
    protected,
    sync_orders,
)
from bot.store.store import Store
from risk.gate import TradingState
from risk.portfolio import Position

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class ExchangeEngine:
    engine: Engine
    executor: ExchangeExecutor
    report: ReconcileReport


async def resume_exchange(engine: Engine, executor: ExchangeExecutor, positions: list[Position], *,
                          client: Any, store: Store, symbols: list[str], rules: dict[str, Any],
                          quote: str = "USDT", stake: float | None = None) -> ExchangeEngine:
    """``positions``: rebuilt from the store (``rebuild_positions``); ``stake``: the quote this
    portfolio accounts for (None: the whole account is ours)."""
    portfolio, settings, clock = engine.portfolio, engine.settings, engine.clock
    orders = list(executor.orders.values())
    engine.restore(
        positions,
        decided=await store.decided_intent_ids(),
        entered_signals={r.signal_id for r in orders if not r.reduce_only},
        open_intents=[(r.client_order_id, r.intent()) for r in orders
                      if not r.state.terminal and not r.protective],
    )
    log.info("stops_rearmed", positions={p.symbol: p.stop_price for p in portfolio.open_positions()})
    breakers = await store.load_breakers()  # before reconciliation's own equity marks
    # 2-3. orders and trades
    report = ReconcileReport()
    outside = stake is not None
    facts = await sync_orders(executor, symbols, report, last_fill_ts(await store.fetch("fills")), outside)
    await engine.apply(facts)
    # 4. balances and prices: the exchange is the truth
    for symbol in symbols:
        ticker = await executor.call(client.fetch_ticker, symbol)
        if ticker.get("last"):
            portfolio.mark(symbol, float(ticker["last"]))
    balance = await executor.call(client.fetch_balance)
    cash = float((balance.get("total") or {}).get(quote) or 0.0)
    fills = await store.fetch("fills")
    if stake is not None:  # never more than the account holds
        cash = max(0.0, min(cash, accounted_cash(stake, fills)))
    portfolio.restore_cash(cash)
    compare_balances(portfolio, balance, rules, {s: client.market(s) for s in symbols}, report, outside,
                     fills)
    for pos in portfolio.open_positions():
        if pos.stop_price is None:
            portfolio.restore(protected(pos, None, settings.stops))
    now = clock.now_ms()
    stored_state = await store.load_trading_state()
    if stored_state is not None and stored_state[0] != TradingState.ACTIVE.value:
        engine.set_state(TradingState(stored_state[0]), f"persisted: {stored_state[1]}")
    if report.mismatches:
        for problem in report.mismatches:
            log.error("reconcile_mismatch", problem=problem)
        reason = "reconciliation mismatch: " + "; ".join(report.mismatches)
        engine.set_state(TradingState.HALTED, reason)
        await store.set_trading_state(TradingState.HALTED.value, reason, now)
    # 5. the breakers' memory (day-start equity, peak), judged against the reconciled equity
    await engine.restore_breakers(now, breakers)
    for pos in portfolio.open_positions():
        engine.store.record(portfolio.position_changed(pos.symbol, now))
    await store.flush()
    # 6. exchange-side stops: every open position gets its stop order before anything trades
    await engine.rearm_exchange_stops()
    log.info(
        "reconciled", recovered_fills=report.recovered_fills, closed_orders=report.closed_orders,
        live_orders=sum(1 for r in executor.orders.values() if r.state is not OrderState.FILLED
                        and not r.state.terminal),
        cash=round(portfolio.cash, 2), state=engine.state.value, mismatches=len(report.mismatches),
    )
    return ExchangeEngine(engine, executor, report)
