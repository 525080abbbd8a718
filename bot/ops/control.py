"""Operator actions on a running daemon: halt (optionally flatten), resume, pause / unpause
new entries per symbol, force-exit a position, reload the configuration.

Every action goes through the Engine's own paths (``set_state``, ``pause``, ``cancel_orders``,
``exit_position``/``flatten`` -> risk gate -> executor) under the daemon's engine lock,
so it never interleaves with a bar being processed; the stored trading state and
pauses outlive a restart. Each action is stored (``operator_actions``: who, when, why,
what came of it), logged, notified (kind ``state``) and published to the live stream.
The REST API and the Telegram commands both call this one ``Operator``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from bot.core.clock import Clock, LiveClock
from risk.state import TradingState

if TYPE_CHECKING:
    from bot.engine.engine import Engine
    from bot.ops.notify import Notifier
    from bot.store.store import Store

log = structlog.get_logger(__name__)

class ActionRefused(ValueError):
    """The action cannot apply (unknown symbol, no position): nothing changed."""


@dataclass(frozen=True, slots=True)
class ActionResult:
    action: str
    who: str
    why: str
    ts: int
    detail: dict[str, Any]  # what came of it; ``symbol`` for the per-symbol actions

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "who": self.who, "why": self.why, "ts": self.ts, "detail": self.detail}


class Operator:
    def __init__(
        self,
        engine: Engine,
        store: Store,
        *,
        symbols: list[str],
        lock: asyncio.Lock,
        notifier: Notifier | None = None,
        reload: Callable[[], Awaitable[bool]] | None = None,
        on_change: Callable[[ActionResult], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.symbols = symbols
        self.lock = lock
        self.notifier = notifier
        self._reload = reload
        self._on_change = on_change
        self.clock = clock or LiveClock()  # when an operator acted: wall time, whatever the Engine's clock

    async def halt(self, who: str, why: str, flatten: bool = False) -> ActionResult:
        """HALTED now (stored: a restart stays halted); open entries cancelled; with ``flatten``
        every position is closed by a reducing order. Stops and exits keep working."""
        async with self.lock:
            ts = self.clock.now_ms()
            reason = f"operator {who}: {why}"
            self.engine.set_state(TradingState.HALTED, reason, force=True)
            await self.store.set_trading_state(TradingState.HALTED.value, reason, ts)
            cancelled = await self.engine.cancel_orders(self.symbols, entries_only=True, keep_protective=True,
                                                        reason="operator halt")
            exits = [p.symbol for p in self.engine.portfolio.open_positions()] if flatten else []
            if flatten:
                await self.engine.flatten("operator")
            return await self._done("halt", who, why, ts, {"state": self.engine.state.value,
                                                           "cancelled_entries": cancelled, "flatten": flatten,
                                                           "exits": exits})

    async def resume(self, who: str, why: str) -> ActionResult:
        """ACTIVE again, stored; refused (``ActionRefused``) while a breaker's cause persists."""
        async with self.lock:
            blockers = self.resume_blockers()
            if blockers:
                raise ActionRefused("; ".join(blockers))
            ts = self.clock.now_ms()
            reason = f"operator {who}: {why}"
            before = self.engine.state.value
            self.engine.set_state(TradingState.ACTIVE, reason, force=True)
            await self.store.set_trading_state(TradingState.ACTIVE.value, reason, ts)
            return await self._done("resume", who, why, ts, {"from": before, "state": self.engine.state.value})

    async def pause(self, symbol: str, who: str, why: str, paused: bool = True) -> ActionResult:
        """Stop (``paused``) or allow again new entries on one traded symbol; stored."""
        self._traded(symbol)
        async with self.lock:
            ts = self.clock.now_ms()
            reason = f"operator {who}: {why}" if paused else None
            self.engine.pause(symbol, reason)
            await self.store.set_pause(symbol, reason, ts)
            return await self._done("pause" if paused else "unpause", who, why, ts,
                                    {"symbol": symbol, "paused": sorted(self.engine.paused)})

    async def exit_position(self, symbol: str, who: str, why: str) -> ActionResult:
        """Force-exit one position with a reducing market order through the risk gate."""
        self._traded(symbol)
        async with self.lock:
            if not self.engine.portfolio.position(symbol).is_open:
                raise ActionRefused(f"no open position in {symbol}")
            ts = self.clock.now_ms()
            sent = await self.engine.exit_position(symbol, "operator")
            return await self._done("exit", who, why, ts, {"symbol": symbol, "exit_sent": sent,
                                                           "note": "" if sent else "an exit is already on its way"})

    async def reload(self, who: str, why: str) -> ActionResult:
        """Re-read and validate the configuration file (as SIGHUP does)."""
        if self._reload is None:
            raise ActionRefused("this daemon cannot reload its configuration")
        async with self.lock:
            ts = self.clock.now_ms()
            ok = await self._reload()
            return await self._done("reload", who, why, ts, {"ok": ok})

    def resume_blockers(self) -> list[str]:
        """Why a resume would not hold: a drawdown or today's daily-loss breach the breakers still see."""
        return self.engine.resume_blockers()

    def _traded(self, symbol: str) -> None:
        if symbol not in self.symbols:
            raise ActionRefused(f"{symbol!r} is not traded here; traded: {', '.join(self.symbols)}")

    async def _done(self, action: str, who: str, why: str, ts: int, detail: dict[str, Any]) -> ActionResult:
        """Store the action (carried out already: marked done), log, notify, publish."""
        result = ActionResult(action, who, why, ts, detail)
        await self.store.record_operator_action(action, who, why, ts, detail)
        for row in await self.store.operator_actions(pending=True):
            if (row["ts"], row["who"], row["action"]) == (ts, who, action):
                await self.store.operator_action_done(int(row["id"]), ts)
        log.warning("operator_action", action=action, who=who, why=why, **detail)
        if self.notifier is not None:
            symbol = detail.get("symbol")
            self.notifier.notify("state", f"operator {action}" + (f" {symbol}" if symbol else ""),
                                 who=who, why=why, **{k: v for k, v in detail.items() if not isinstance(v, list)})
        if self._on_change is not None:
            self._on_change(result)
        return result
