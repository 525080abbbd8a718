"""Circuit breakers as small plug-ins, each answering "lock? until when? why?".

A breaker watches marked equity and, when its limit is breached, asks for a ``Lock``: the
trading state it demands, until when (``None``: until an operator resumes) and why. They
are listed in ``[risk] breakers`` and built by name (``make_breakers``); the trading-state
controller (``risk.trading_state``) asks them in that order and takes the first lock.

* ``max_drawdown``: equity ``max_drawdown_pct`` below its peak -> HALTED until an operator
  resumes;
* ``daily_loss``: equity ``daily_loss_limit_pct`` below the UTC day's opening equity ->
  REDUCING for the rest of that day.

REDUCING stops new entries while exits and stops keep working; HALTED sends nothing but its
own positions' protective stops and an operator's flatten (exchange-side stops already
resting stay). What a breaker must remember across a restart (day-start equity, peak) is
part of one persisted ``BreakerMemory``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bot.core.memory import BreakerMemory
from risk.state import TradingState

if TYPE_CHECKING:
    from risk.limits import RiskLimits

DAY_MS = 86_400_000


def daily_loss_breach(equity: float, day_start_equity: float, limit_pct: float | None) -> str | None:
    if limit_pct is None or day_start_equity <= 0:
        return None
    loss_pct = (1.0 - equity / day_start_equity) * 100.0
    if loss_pct >= limit_pct:
        return f"daily loss {loss_pct:.2f}% reached the limit {limit_pct:.2f}%"
    return None


def drawdown_breach(equity: float, peak_equity: float, limit_pct: float | None) -> str | None:
    if limit_pct is None or peak_equity <= 0:
        return None
    dd_pct = (1.0 - equity / peak_equity) * 100.0
    if dd_pct >= limit_pct:
        return f"drawdown {dd_pct:.2f}% from peak {peak_equity:.2f} reached the limit {limit_pct:.2f}%"
    return None


def escalate(current: TradingState, wanted: TradingState) -> TradingState:
    order = (TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED)
    return wanted if order.index(wanted) > order.index(current) else current


EMPTY_MEMORY = BreakerMemory(None, 0.0, 0.0, None)


@dataclass(frozen=True, slots=True)
class Lock:
    """A breaker's answer: the state it demands, until when (``None``: an operator resumes), why."""

    state: TradingState
    until_ms: int | None
    reason: str


class Breaker(Protocol):
    name: str

    def track(self, ts_ms: int, equity: float) -> None:
        """Follow a marked equity at ``ts_ms`` (every breaker, on every mark)."""
        ...

    def check(self, ts_ms: int, equity: float) -> Lock | None:
        """Lock? until when? why? (asked right after this breaker's ``track``, in the configured
        order, until one locks: a breaker after the first lock only tracks)."""
        ...

    def lifted(self, ts_ms: int) -> str | None:
        """Why the timed lock this breaker holds has ended at ``ts_ms`` (it forgets it), else ``None``."""
        ...

    def resume_blocker(self, ts_ms: int, equity: float) -> str | None:
        """Why lifting a halt now would not hold (the breach persists), else ``None``."""
        ...

    def remember(self) -> dict[str, Any]:
        """This breaker's fields of the persisted ``BreakerMemory``."""
        ...

    def recall(self, memory: BreakerMemory) -> None:
        """Take back what ``remember`` stored (restart)."""
        ...


class MaxDrawdown:
    """HALTED when equity falls ``limit_pct`` below its peak; stays until an operator resumes."""

    name = "max_drawdown"

    def __init__(self, limit_pct: float | None) -> None:
        self.limit_pct = limit_pct
        self.peak_equity = 0.0

    def track(self, ts_ms: int, equity: float) -> None:
        if equity > self.peak_equity:  # max(peak, equity), as max compares them
            self.peak_equity = equity

    def check(self, ts_ms: int, equity: float) -> Lock | None:
        limit = self.limit_pct
        if limit is not None and limit > 0 and equity >= self.peak_equity:
            return None  # at its peak: no drawdown reaches a positive limit
        reason = drawdown_breach(equity, self.peak_equity, limit)
        return None if reason is None else Lock(TradingState.HALTED, None, reason)

    def lifted(self, ts_ms: int) -> str | None:
        return None

    def resume_blocker(self, ts_ms: int, equity: float) -> str | None:
        dd = drawdown_breach(equity, self.peak_equity, self.limit_pct)
        return None if dd is None else f"{dd}; wait for equity to recover, or raise risk.max_drawdown_pct"

    def remember(self) -> dict[str, Any]:
        return {"peak_equity": self.peak_equity}

    def recall(self, memory: BreakerMemory) -> None:
        self.peak_equity = memory.peak_equity


class DailyLoss:
    """REDUCING for the rest of the UTC day when equity falls ``limit_pct`` below the day's open."""

    name = "daily_loss"

    def __init__(self, limit_pct: float | None) -> None:
        self.limit_pct = limit_pct
        self.day: int | None = None
        self.day_start_equity = 0.0
        self.locked_day: int | None = None  # the UTC day its REDUCING applies to

    def track(self, ts_ms: int, equity: float) -> None:
        day = ts_ms // DAY_MS
        if self.day != day:
            self.day = day
            self.day_start_equity = equity

    def check(self, ts_ms: int, equity: float) -> Lock | None:
        limit = self.limit_pct
        if limit is not None and limit > 0 and equity >= self.day_start_equity:
            return None  # not below the day's open: no loss reaches a positive limit
        reason = daily_loss_breach(equity, self.day_start_equity, limit)
        if reason is None:
            return None
        day = ts_ms // DAY_MS
        self.locked_day = day
        return Lock(TradingState.REDUCING, (day + 1) * DAY_MS, reason)

    def lifted(self, ts_ms: int) -> str | None:
        if self.locked_day is None or ts_ms // DAY_MS == self.locked_day:
            return None
        self.locked_day = None
        return "new UTC day: daily loss limit reset"

    def resume_blocker(self, ts_ms: int, equity: float) -> str | None:
        if self.locked_day != ts_ms // DAY_MS:
            return None
        loss = daily_loss_breach(equity, self.day_start_equity, self.limit_pct)
        return None if loss is None else f"{loss} today; it resets at 00:00 UTC"

    def remember(self) -> dict[str, Any]:
        return {"day": self.day, "day_start_equity": self.day_start_equity, "reducing_day": self.locked_day}

    def recall(self, memory: BreakerMemory) -> None:
        self.day, self.day_start_equity = memory.day, memory.day_start_equity
        self.locked_day = memory.reducing_day


#: every breaker by the name ``[risk] breakers`` lists it under, built from the risk limits
BREAKERS: dict[str, Callable[[RiskLimits], Breaker]] = {
    MaxDrawdown.name: lambda limits: MaxDrawdown(limits.max_drawdown_pct),
    DailyLoss.name: lambda limits: DailyLoss(limits.daily_loss_limit_pct),
}


def make_breakers(limits: RiskLimits, names: Sequence[str] | None = None) -> list[Breaker]:
    """The breakers ``names`` lists (default: ``limits.breakers``), in that order."""
    return [BREAKERS[name](limits) for name in (limits.breakers if names is None else names)]


def resume_blockers(ts_ms: int, equity: float, memory: BreakerMemory, limits: RiskLimits) -> list[str]:
    """Why lifting a halt would not hold, judged by the breakers ``limits`` lists from a
    persisted memory (a process other than the running daemon: ``neuralbot resume``)."""
    problems = []
    for breaker in make_breakers(limits):
        breaker.recall(memory)
        problem = breaker.resume_blocker(ts_ms, equity)
        if problem is not None:
            problems.append(problem)
    return problems
