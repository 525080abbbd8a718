"""Circuit breakers: daily loss limit and equity drawdown, pure functions plus a small tracker.

A breached daily loss limit moves the bot to REDUCING until the next UTC day; a
breached drawdown moves it to HALTED until an operator resumes it. REDUCING stops new
entries while exits and stops keep working; HALTED sends nothing but its own positions'
protective stops and an operator's flatten (exchange-side stops already resting stay).
States only escalate here.
"""

from __future__ import annotations

from dataclasses import dataclass

from risk.state import TradingState

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


def resume_blockers(equity: float, peak_equity: float, day_start_equity: float, reducing_today: bool,
                    max_drawdown_pct: float | None, daily_loss_limit_pct: float | None) -> list[str]:
    """Why lifting a halt would not hold: a drawdown, or today's daily loss, still breached."""
    problems = []
    dd = drawdown_breach(equity, peak_equity, max_drawdown_pct)
    if dd is not None:
        problems.append(f"{dd}; wait for equity to recover, or raise risk.max_drawdown_pct")
    loss = daily_loss_breach(equity, day_start_equity, daily_loss_limit_pct) if reducing_today else None
    if loss is not None:
        problems.append(f"{loss} today; it resets at 00:00 UTC")
    return problems


def escalate(current: TradingState, wanted: TradingState) -> TradingState:
    order = (TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED)
    return wanted if order.index(wanted) > order.index(current) else current


@dataclass(frozen=True, slots=True)
class BreakerMemory:
    """What the breakers must remember across a restart (persisted by the store)."""

    day: int | None
    day_start_equity: float
    peak_equity: float
    reducing_day: int | None = None


@dataclass(slots=True)
class Breakers:
    """Tracks the day's opening equity and the equity peak; says which state is due."""

    daily_loss_limit_pct: float | None = 5.0
    max_drawdown_pct: float | None = 15.0
    day: int | None = None
    day_start_equity: float = 0.0
    peak_equity: float = 0.0
    reducing_day: int | None = None  # the UTC day a daily-loss REDUCING applies to

    def update(self, ts_ms: int, equity: float) -> tuple[TradingState, str] | None:
        """Feed a marked equity at ``ts_ms``; returns the state a breach demands, if any."""
        day = ts_ms // DAY_MS
        if self.day != day:
            self.day = day
            self.day_start_equity = equity
        self.peak_equity = max(self.peak_equity, equity)
        reason = drawdown_breach(equity, self.peak_equity, self.max_drawdown_pct)
        if reason is not None:
            return TradingState.HALTED, reason
        reason = daily_loss_breach(equity, self.day_start_equity, self.daily_loss_limit_pct)
        if reason is not None:
            self.reducing_day = day
            return TradingState.REDUCING, reason
        return None

    def daily_reset_due(self, ts_ms: int) -> bool:
        """Whether a daily-loss REDUCING has expired (a new UTC day started)."""
        return self.reducing_day is not None and ts_ms // DAY_MS != self.reducing_day

    def memory(self) -> BreakerMemory:
        return BreakerMemory(self.day, self.day_start_equity, self.peak_equity, self.reducing_day)

    def restore(self, memory: BreakerMemory) -> None:
        """Replace what is tracked with a persisted memory (restart)."""
        self.day = memory.day
        self.day_start_equity = memory.day_start_equity
        self.peak_equity = memory.peak_equity
        self.reducing_day = memory.reducing_day
