"""Wiring an exchange-mode (sandbox / live) Engine: connect, reconcile, re-arm stops, resume.

With ``exchange_stops`` every open position also gets (or keeps) its exchange-side
stop order once reconciliation has settled what is held; the breakers' persisted
day-start equity and peak are restored, so a restart does not reset a drawdown.

``build_exchange_engine`` is what ``run_daemon`` calls for ``mode = "sandbox" | "live"``
(and the sandbox runner uses). Nothing trades until it has returned: positions and
their stops come first, then the exchange is reconciled; an unexplained mismatch
leaves the engine HALTED (persisted, so a restart does not quietly resume).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import structlog

from bot.clock import Clock
from bot.engine import Engine, EngineSettings
from bot.execution.exchange import ExchangeExecutor
from bot.execution.orders import OrderState
from bot.execution.reconcile import (
    ReconcileReport,
    accounted_cash,
    compare_balances,
    last_fill_ts,
    protected,
    rebuild_positions,
    sync_orders,
)
from bot.execution.retry import RetryPolicy
from bot.store import Store
from risk.gate import RiskGate, RiskLimits, TradingState
from risk.portfolio import Portfolio
from strategies.base import Strategy

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class ExchangeEngine:
    engine: Engine
    executor: ExchangeExecutor
    report: ReconcileReport


def make_ccxt_client(settings: Any, *, pro: bool = False) -> Any:
    """A ccxt async client from the configuration: the test network in ``sandbox`` mode only.

    ``pro``: the ccxt.pro (websocket) class, without credentials (market data only).
    ``exchange.http_url`` / ``ws_url`` point it at another server (the loopback exchange).
    """
    if settings.mode == "live" and not settings.i_understand_live_trading:
        raise RuntimeError("live trading needs i_understand_live_trading = true")
    if pro:
        import ccxt.pro as ccxt_module
    else:
        import ccxt.async_support as ccxt_module

    cls = getattr(ccxt_module, settings.exchange.name)
    from bot.execution.retry import CCXT_RATE_LIMIT

    params: dict[str, Any] = {**CCXT_RATE_LIMIT, "timeout": settings.exchange.timeout_ms}
    if not pro and settings.api_key is not None and settings.api_secret is not None:
        params |= {"apiKey": settings.api_key.get_secret_value(),
                   "secret": settings.api_secret.get_secret_value()}
    client = cls(params)
    if settings.exchange.http_url:
        from bot.exchange_sim.ccxt_config import configure_ccxt

        configure_ccxt(client, settings.exchange.http_url, settings.exchange.ws_url)
    elif settings.mode == "sandbox":  # paper streams the real public market data
        client.set_sandbox_mode(True)
    return client


async def build_exchange_engine(
    *,
    client: Any,
    store: Store,
    clock: Clock,
    strategies: list[Strategy],
    symbols: list[str],
    limits: RiskLimits,
    settings: EngineSettings,
    retry: RetryPolicy | None = None,
    quote: str = "USDT",
    exchange_stops: bool = False,
    stake: float | None = None,
) -> ExchangeEngine:
    """``stake``: the quote this portfolio accounts for (None: the whole account is ours)."""
    executor = ExchangeExecutor(client, store, clock, retry=retry, exchange_stops=exchange_stops)
    rules = await executor.start(symbols)
    maker, taker = executor.fees(symbols[0]) if symbols else (0.0, settings.fee_rate)
    settings = replace(settings, durable=True, fee_rate=max(maker, taker))
    # 1. positions and their stops, before anything else
    positions = await rebuild_positions(store, settings.stops, rules)
    portfolio = Portfolio(cash=0.0)
    engine = Engine(strategies=strategies, gate=RiskGate(limits), executor=executor,
                    portfolio=portfolio, store=store, clock=clock, settings=settings, markets=rules)
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
    if stake is not None:  # never more than the account holds
        cash = max(0.0, min(cash, accounted_cash(stake, await store.fetch("fills"))))
    portfolio.restore_cash(cash)
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
