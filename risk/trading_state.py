"""The trading-state controller: owns ACTIVE / REDUCING / HALTED and the paused symbols.

The state moves by three roads: the circuit breakers (``risk.breakers`` plug-ins, asked in
their configured order on every marked equity), an operator (halt / resume, stored by the
store and re-read by the Engine) and a restart (the persisted state and the breakers'
memory are restored, so a restart cannot reset a drawdown). States only escalate, except
by ``force`` (an operator's resume) or when a breaker's timed lock ends.

Every change is a frozen ``TradingStateChanged`` fact handed to ``on_change`` (the Engine
stores and publishes it like every other fact), as nautilus_trader's risk engine emits its
trading-state events. Pure: no I/O; the caller persists the memory it returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType

import structlog

from bot.core.events import TradingStateChanged
from risk.breakers import EMPTY_MEMORY, Breaker, BreakerMemory, escalate
from risk.state import TradingState

log = structlog.get_logger("bot.engine.engine")
_REDUCING = TradingState.REDUCING  # read on every marked equity: an enum member's lookup costs ~5x a global's


class TradingStateController:
    def __init__(self, breakers: Sequence[Breaker],
                 on_change: Callable[[TradingStateChanged], None] | None = None) -> None:
        self._breakers = list(breakers)
        self._on_change = on_change
        self._state = TradingState.ACTIVE
        self._reason = ""
        self._paused: dict[str, str] = {}  # symbol -> why its new entries are paused

    @property
    def state(self) -> TradingState:
        return self._state

    @property
    def reason(self) -> str:
        return self._reason

    @property
    def paused(self) -> Mapping[str, str]:
        """Symbols whose new entries are paused, and why (read-only)."""
        return MappingProxyType(self._paused)

    @property
    def breakers(self) -> tuple[Breaker, ...]:
        return tuple(self._breakers)

    def pause(self, symbol: str, reason: str | None) -> None:
        """Stop new entries on ``symbol`` (the gate's ``symbol_paused``), or lift it (``None``)."""
        if reason is None:
            self._paused.pop(symbol, None)
        else:
            self._paused[symbol] = reason
        log.warning("symbol_paused" if reason is not None else "symbol_unpaused", symbol=symbol, reason=reason)

    def set_state(self, state: TradingState, reason: str, ts: int, force: bool = False) -> bool:
        """Move to ``state`` (only escalates unless ``force``); returns whether it changed."""
        new = state if force else escalate(self._state, state)
        if new is self._state:
            return False
        old, self._state, self._reason = self._state, new, reason
        log.warning("trading_state_changed", old=old.value, new=new.value, reason=reason)
        if self._on_change is not None:
            self._on_change(TradingStateChanged(ts, old.value, new.value, reason))
        return True

    def on_equity(self, ts: int, equity: float) -> None:
        """A marked equity: an expired timed lock lifts, then the breakers may lock."""
        if self._state is _REDUCING:
            for breaker in self._breakers:
                why = breaker.lifted(ts)
                if why is not None:
                    self.set_state(TradingState.ACTIVE, why, ts, force=True)
        lock = None
        for breaker in self._breakers:  # each tracks its own; the first lock in order decides
            breaker.track(ts, equity)
            if lock is None:
                lock = breaker.check(ts, equity)
        if lock is not None:
            self.set_state(lock.state, lock.reason, ts)

    def apply_stored(self, stored: str, reason: str, ts: int) -> None:
        """Honour a state an operator stored (escalates only); an unknown value is logged, ignored."""
        try:
            wanted = TradingState(stored)
        except ValueError:
            log.error("stored_trading_state_unknown", state=stored)
            return
        self.set_state(wanted, reason, ts)

    def resume_blockers(self, ts: int, equity: float) -> list[str]:
        """Why a resume would not hold: a breach the breakers still see."""
        return [p for b in self._breakers if (p := b.resume_blocker(ts, equity)) is not None]

    # -- memory across restarts and reloads -----------------------------------------------------

    def memory(self) -> BreakerMemory:
        fields: dict[str, object] = {}
        for breaker in self._breakers:
            fields |= breaker.remember()
        return replace(EMPTY_MEMORY, **fields)  # type: ignore[arg-type]

    def recall(self, memory: BreakerMemory) -> None:
        for breaker in self._breakers:
            breaker.recall(memory)

    def replace_breakers(self, breakers: Sequence[Breaker]) -> None:
        """New breakers (a reloaded configuration) that keep what the old ones remembered."""
        memory = self.memory()
        self._breakers = list(breakers)
        self.recall(memory)
