"""A paper Engine after a restart: what it held and decided, from the store alone.

Cash, positions with their stops, the decisions taken and the trading state are restored
(:func:`restore_paper`); paper orders that died with the last process expire. Called by
:meth:`bot.kernel.kernel.Kernel.daemon` before the warm-up; the exchange modes reconcile
against the exchange instead (:mod:`bot.kernel.resume`).
"""

from __future__ import annotations

import structlog

from bot.core.clock import LiveClock
from bot.engine.engine import Engine
from bot.store.store import Store
from risk.portfolio import Position

log = structlog.get_logger(__name__)


async def restore_paper(engine: Engine, store: Store) -> None:
    """Paper state after a restart: cash, positions with their stops, decisions, trading state."""
    equity = await store.fetch("equity")
    if equity:
        engine.portfolio.restore_cash(float(equity[-1]["cash"]))
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
