"""Resuming a built Engine after a restart, before anything trades.

* exchange modes (sandbox / live), :func:`resume_exchange`: positions and their stops
  come first, then the exchange is reconciled (orders, trades, balances); with
  ``exchange_stops`` every open position also gets (or keeps) its exchange-side stop
  order; the breakers' persisted day-start equity and peak are restored, so a restart
  does not reset a drawdown. An unexplained mismatch leaves the engine HALTED
  (persisted, so a restart does not quietly resume).
* paper, :func:`restore_paper`: cash, positions with their stops, decisions and the
  trading state from the store; paper orders that died with the last process expire.

The Engine itself is built by :mod:`bot.kernel`, which calls these.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from bot.clock import LiveClock
from bot.engine import Engine
from bot.execution.exchange import ExchangeExecutor
from bot.execution.orders import OrderState
from bot.execution.reconcile import (
    ReconcileReport,
    accounted_cash,
    compare_balances,
    last_fill_ts,
    protected,
    sync_orders,
)
from bot.store import Store
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
    portfolio.cash = float((balance.get("total") or {}).get(quote) or 0.0)
    if stake is not None:  # never more than the account holds
        portfolio.cash = max(0.0, min(portfolio.cash, accounted_cash(stake, await store.fetch("fills"))))
    compare_balances(portfolio, balance, rules, {s: client.market(s) for s in symbols}, report, outside)
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


async def restore_paper(engine: Engine, store: Store) -> None:
    """Paper state after a restart: cash, positions with their stops, decisions, trading state."""
    equity = await store.fetch("equity")
    if equity:
        engine.portfolio.cash = float(equity[-1]["cash"])
    trailing = engine.settings.stops.trailing_stop_pct
    positions = [Position(r["symbol"], r["amount"], r["avg_price"], r["stop_price"], r["take_profit"],
                          trailing, r["realized_pnl"], r["ts"])
                 for r in await store.fetch("positions") if r["amount"] > 0]
    engine.restore(positions, decided=await store.decided_intent_ids())
    await expire_paper_orders(store)
    await engine.poll_trading_state(force=True)  # a stored HALTED / REDUCING outlives the restart


async def expire_paper_orders(store: Store) -> None:
    """Paper orders the store still holds as live died with the last process (killed before
    it could cancel them): stored as expired, so none is taken for live; the positions
    they did not close stay open, protected by their stops, for the strategy to decide anew."""
    expired = await store.expire_open_orders(LiveClock().now_ms())
    if expired:
        log.warning("paper_orders_expired_at_restart", orders=expired)
