"""Operator control of a portfolio's trading state: halt, resume, and their stored record.

Plain async functions over the configuration, called by the command line
(``neuralbot halt`` / ``neuralbot resume``) and meant for any other front end (a REST
API passes its authenticated user as ``who``):

* ``halt_trading(settings, who=, why=, flatten=False)``: store HALTED; in sandbox/live
  cancel our open entry orders at the exchange and, with ``flatten``, close every open
  position with reducing market orders. In paper the positions live in the daemon's
  paper book: the daemon closes them (at once when it runs, else as it next starts,
  before it trades); the answer says which, or why there is nothing to close.
* ``resume_trading(settings, who=, why=)``: back to ACTIVE, or ``ResumeRefused`` while
  the cause persists (``resume_blockers``).
* ``resume_blockers(settings, store)``: why a resume would be refused now: not halted,
  a drawdown or daily-loss breaker still breached (judged with the configured limits),
  or (sandbox/live) a reconciliation mismatch the exchange still shows.
* ``operator_history(settings, limit)``: the last actions (who, when, action, why).
* ``carry_out_operator_actions(engine, store, after_id, starting)``: the daemon's side;
  it applies new actions to its running Engine (resume, halt, paper flatten) and marks
  them done.

Every accepted action is one row of ``operator_actions`` written in the same
transaction as the trading state it sets; a refused one changes nothing.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from bot.config.ops import state_file_for
from bot.core.clock import LiveClock
from bot.ops.daemon_state import daemon_state
from bot.store.lock import StoreLock, StoreLocked
from bot.store.store import Store
from risk.breakers import resume_blockers as breach_blockers
from risk.state import TradingState

if TYPE_CHECKING:
    from bot.config.settings import Settings
    from bot.engine.engine import Engine

log = structlog.get_logger(__name__)

MISMATCH_REASON = "reconciliation mismatch"


class ResumeRefused(RuntimeError):
    """The cause of the halt persists; the message says what it is and what would clear it."""


def default_operator() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


async def trading_symbols(settings: Settings, store: Store) -> list[str]:
    """The symbols the strategies trade, plus any the store still holds a position in."""
    from bot.kernel.settings import build_strategies, feed_series  # the strategy stack (numpy/torch): only to list symbols

    held = {r["symbol"] for r in await store.fetch("positions") if r["amount"] > 0}
    return sorted({sym for sym, _ in feed_series(build_strategies(settings))} | held)


def _daemon_pid(settings: Settings) -> int | None:
    """The pid of the daemon owning the store's portfolio, or None when none runs."""
    try:
        StoreLock.acquire(settings.store.path, settings.store.portfolio, run_id="probe").release()
    except StoreLocked as exc:
        return exc.pid or -1
    return None


async def halt_trading(settings: Settings, *, who: str, why: str, flatten: bool = False) -> dict[str, Any]:
    """Store HALTED (with the action), cancel our open entries, optionally get flat."""
    clock = LiveClock()
    store = await Store.open(settings.store.path, portfolio=settings.store.portfolio)
    summary: dict[str, Any] = {"state": "halted", "canceled": 0, "flattened": 0}
    try:
        symbols = await trading_symbols(settings, store)
        paper = settings.mode == "paper"
        await store.record_operator_action(
            "halt", who, why, clock.now_ms(), {"flatten": flatten, "daemon_flattens": flatten and paper,
                                                "symbols": symbols},
            state=(TradingState.HALTED.value, f"operator halt by {who}: {why}"))
        if paper:
            summary["note"] = await _paper_flatten_note(settings, store) if flatten else \
                "paper mode: no exchange orders; the daemon stays halted until resumed"
        else:
            summary |= await _halt_at_exchange(settings, store, symbols, flatten)
    finally:
        await store.close()
    log.warning("halted", who=who, why=why, **summary)
    return summary


async def _paper_flatten_note(settings: Settings, store: Store) -> str:
    pid = _daemon_pid(settings)
    if pid is not None:
        return f"paper mode: the running daemon (pid {pid}) closes every open position at its next market event"
    held = [f"{r['symbol']} {r['amount']:.8f}" for r in await store.fetch("positions") if r["amount"] > 0]
    if not held:
        return "paper mode: no open position to flatten"
    return f"paper mode: no daemon runs on this store; it closes {', '.join(held)} when it next starts, before trading"


async def _halt_at_exchange(settings: Settings, store: Store, symbols: list[str], flatten: bool) -> dict[str, Any]:
    # ccxt and the Engine: only an exchange-mode halt needs them (`neuralbot halt` starts light)
    from bot.execution.exchange import ExchangeExecutor
    from bot.core.orders import OrderClosed
    from bot.kernel.kernel import Kernel

    clock = LiveClock()
    out: dict[str, Any] = {}
    kernel = Kernel(settings)
    client = kernel.client()
    try:
        executor = ExchangeExecutor(client, store, clock)
        await executor.start(symbols)
        _, facts = await executor.cancel_all(clock.now_ms(), symbols, keep_protective=False, entries_only=True,
                                             reason="operator halt")
        out["canceled"] = sum(1 for f in facts if isinstance(f, OrderClosed))
        if flatten:
            built = await kernel.exchange_engine(client, store, clock, [], symbols,
                                                 exchange_stops=False)  # flattening: no stop to re-arm
            before = len(built.engine.portfolio.open_positions())
            await built.engine.flatten("halt")
            out["flattened"] = before - len(built.engine.portfolio.open_positions())
    finally:
        await client.close()
    return out


async def resume_blockers(settings: Settings, store: Store) -> list[str]:
    """Why trading cannot resume now (empty: it can)."""
    stored = await store.load_trading_state()
    state, reason = stored if stored is not None else ("active", "")
    running = _running_state(state_file_for(settings))
    if running is not None and running[0] != "active":
        state, reason = running
    if state == TradingState.ACTIVE.value:
        return ["trading is not halted; nothing to resume"]
    problems: list[str] = []
    equity = await store.fetch("equity", "ts = (SELECT MAX(ts) FROM equity WHERE portfolio = ?)",
                               (store.portfolio,))
    memory = await store.load_breakers()
    if memory is not None and equity:
        from bot.kernel.settings import risk_limits

        eq, ts = float(equity[-1]["equity"]), int(equity[-1]["ts"])
        problems += breach_blockers(ts, eq, memory, risk_limits(settings))
    if MISMATCH_REASON in reason and settings.mode != "paper":
        problems += await _exchange_mismatches(settings, store)
    return problems


def _running_state(path: Path) -> tuple[str, str] | None:
    """The trading state a running daemon reports in its state file (breaker halts are not stored)."""
    d = daemon_state(path)
    if not d["running"]:
        return None
    try:
        reason = str(json.loads(path.read_text()).get("trading_state_reason", ""))
    except (OSError, ValueError):
        reason = ""
    return str(d["state"]), reason


async def _exchange_mismatches(settings: Settings, store: Store) -> list[str]:
    """Stored positions against the exchange's balances now (read-only requests)."""
    # ccxt: only an exchange-mode resume asks the exchange
    from bot.execution.exchange import ExchangeExecutor
    from bot.kernel.kernel import Kernel

    client = Kernel(settings).client()
    try:
        symbols = await trading_symbols(settings, store)
        rules = await ExchangeExecutor(client, store, LiveClock()).start(symbols)
        totals = (await client.fetch_balance()).get("total") or {}
        held = {r["symbol"]: float(r["amount"]) for r in await store.fetch("positions")}
        out = []
        for sym in symbols:
            base = client.market(sym)["base"]
            price = float((await client.fetch_ticker(sym)).get("last") or 0.0)
            there, ours = float(totals.get(base) or 0.0), held.get(sym, 0.0)
            if abs(there - ours) > (rules[sym].dust(price) if price > 0 else 0.0):
                out.append(f"{MISMATCH_REASON} persists: {sym}: we hold {ours:.8f} {base},"
                           f" the exchange says {there:.8f}; explain or move the difference, then resume")
        return out
    finally:
        await client.close()


async def resume_trading(settings: Settings, *, who: str, why: str) -> dict[str, Any]:
    """Back to ACTIVE with the action stored, or ``ResumeRefused`` naming what still holds."""
    if not why.strip():
        raise ResumeRefused("say why: --why TEXT is stored with the resume")
    store = await Store.open(settings.store.path, portfolio=settings.store.portfolio)
    try:
        blockers = await resume_blockers(settings, store)
        if blockers:
            raise ResumeRefused("resume refused: " + "; ".join(blockers))
        ts = LiveClock().now_ms()
        await store.record_operator_action(
            "resume", who, why, ts, {}, state=(TradingState.ACTIVE.value, f"operator resume by {who}: {why}"))
    finally:
        await store.close()
    log.warning("resumed", who=who, why=why)
    return {"state": "active", "who": who, "why": why, "ts": ts}


async def operator_history(settings: Settings, limit: int = 20) -> list[dict[str, Any]]:
    """The portfolio's last ``limit`` operator actions, newest first (read-only)."""
    store = await Store.open(settings.store.path, portfolio=settings.store.portfolio, read_only=True)
    try:
        rows = await store.operator_actions()
    finally:
        await store.close()
    return [{k: r[k] for k in ("id", "ts", "who", "action", "why", "done_ms")}
            | {"detail": json.loads(r["detail_json"])} for r in reversed(rows[-limit:])]


async def carry_out_operator_actions(engine: Engine, store: Store, after_id: int = 0,
                                     starting: bool = False) -> int:
    """Apply operator actions newer than ``after_id`` to a running Engine; return the last id seen.

    ``starting``: the stored trading state the actions wrote is already restored, so only
    a pending paper flatten is carried out (an old resume never overrides a breaker).
    """
    for row in await store.operator_actions(after_id, pending=True):
        after_id = int(row["id"])
        detail = json.loads(row["detail_json"])
        reason = f"operator {row['action']} by {row['who']}: {row['why']}"
        if row["action"] == "halt":
            engine.set_state(TradingState.HALTED, reason)
            if detail.get("daemon_flattens"):
                await engine.flatten("operator")
                log.warning("operator_flatten", positions=detail.get("symbols"), who=row["who"])
        elif row["action"] == "resume" and not starting:
            engine.set_state(TradingState.ACTIVE, reason, force=True)
        await store.operator_action_done(after_id, engine.clock.now_ms())
    return after_id
