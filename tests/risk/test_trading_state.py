"""The trading-state controller alone (transitions, each one a ``TradingStateChanged``), the
breaker plug-ins one by one, and the facts stored by a real Engine on SQLite."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.clock import SimClock
from bot.engine.engine import Engine
from bot.core.events import Candle, TradingStateChanged
from bot.execution.simulated import SimulatedExecutor
from bot.store.store import Store
from risk.breakers import (
    BREAKERS,
    DAY_MS,
    EMPTY_MEMORY,
    BreakerMemory,
    DailyLoss,
    Lock,
    daily_loss_breach,
    drawdown_breach,
    MaxDrawdown,
    make_breakers,
    resume_blockers,
)
from risk.gate import RiskGate, RiskLimits
from risk.portfolio import Portfolio
from risk.state import TradingState
from risk.trading_state import TradingStateController

A, R, H = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


def controller(**limits: object) -> tuple[TradingStateController, list[TradingStateChanged]]:
    changes: list[TradingStateChanged] = []
    return TradingStateController(make_breakers(RiskLimits(**limits)), changes.append), changes  # type: ignore[arg-type]


# -- the controller -----------------------------------------------------------------------------


def test_every_change_is_one_fact_and_states_only_escalate_unless_forced() -> None:
    t, changes = controller()
    assert t.set_state(R, "why 1", 10)
    assert not t.set_state(A, "not forced", 11)  # no de-escalation by a breaker or a poll
    assert not t.set_state(R, "again", 12)  # no change, no fact
    assert t.set_state(H, "why 2", 13)
    assert t.set_state(A, "operator resume", 14, force=True)
    assert changes == [TradingStateChanged(10, "active", "reducing", "why 1"),
                       TradingStateChanged(13, "reducing", "halted", "why 2"),
                       TradingStateChanged(14, "halted", "active", "operator resume")]
    assert (t.state, t.reason) == (A, "operator resume")


def test_a_daily_loss_reduces_until_the_next_utc_day_then_lifts() -> None:
    t, changes = controller(daily_loss_limit_pct=5.0, max_drawdown_pct=50.0)
    t.on_equity(0, 100.0)
    t.on_equity(1_000, 94.0)
    t.on_equity(DAY_MS - 1, 90.0)  # still today: stays reducing, no second fact
    t.on_equity(DAY_MS + 5, 90.0)  # a new day: lifted, and 90 is the new day's start
    assert [(c.old, c.new) for c in changes] == [("active", "reducing"), ("reducing", "active")]
    assert changes[1].reason == "new UTC day: daily loss limit reset" and changes[1].ts == DAY_MS + 5
    assert t.state is A


def test_a_drawdown_halts_and_stays_halted_through_new_days() -> None:
    t, changes = controller(daily_loss_limit_pct=5.0, max_drawdown_pct=15.0)
    t.on_equity(0, 100.0)
    t.on_equity(1_000, 84.0)
    t.on_equity(3 * DAY_MS, 84.0)
    assert [c.new for c in changes] == ["halted"] and t.state is H
    assert "drawdown 16.00%" in t.reason
    assert t.resume_blockers(3 * DAY_MS, 84.0) == [
        "drawdown 16.00% from peak 100.00 reached the limit 15.00%; wait for equity to recover,"
        " or raise risk.max_drawdown_pct"]
    assert t.resume_blockers(3 * DAY_MS, 90.0) == []


def test_an_unknown_stored_state_is_ignored_and_a_known_one_escalates() -> None:
    t, changes = controller()
    t.apply_stored("paused-ish", "?", 1)
    assert t.state is A and not changes
    t.apply_stored("halted", "operator", 2)
    assert t.state is H and changes[-1] == TradingStateChanged(2, "active", "halted", "operator")


def test_memory_survives_a_restart_and_a_reload_of_the_breakers() -> None:
    t, _ = controller(daily_loss_limit_pct=5.0)
    t.on_equity(0, 100.0)
    t.on_equity(1_000, 120.0)
    t.on_equity(2_000, 113.0)  # above the day's start, 5.8% below the peak: no lock
    memory = t.memory()
    assert memory == BreakerMemory(0, 100.0, 120.0, None)
    again, _ = controller(daily_loss_limit_pct=5.0)
    again.recall(memory)
    assert again.memory() == memory
    again.replace_breakers(make_breakers(RiskLimits(daily_loss_limit_pct=1.0)))  # a reload keeps the peak
    assert again.memory() == memory


def test_the_first_lock_in_the_configured_order_decides() -> None:
    dd_first, _ = controller(daily_loss_limit_pct=5.0, max_drawdown_pct=15.0)
    loss_first, _ = controller(daily_loss_limit_pct=5.0, max_drawdown_pct=15.0,
                               breakers=("daily_loss", "max_drawdown"))
    for t in (dd_first, loss_first):
        t.on_equity(0, 100.0)
        t.on_equity(1, 80.0)  # both breached
    assert dd_first.state is H and loss_first.state is R


def test_paused_symbols_are_read_only_from_outside() -> None:
    t, _ = controller()
    t.pause("BTC/USDT", "news")
    with pytest.raises(TypeError):
        t.paused["ETH/USDT"] = "x"  # type: ignore[index]
    t.pause("BTC/USDT", None)
    assert dict(t.paused) == {}


# -- the plug-ins -------------------------------------------------------------------------------


def test_max_drawdown_locks_until_an_operator_resumes() -> None:
    b = MaxDrawdown(10.0)
    b.track(0, 200.0)
    b.track(1, 185.0)
    assert b.check(1, 185.0) is None
    assert b.check(2, 179.0) == Lock(H, None, "drawdown 10.50% from peak 200.00 reached the limit 10.00%")
    assert b.lifted(10 * DAY_MS) is None  # never by time
    assert b.remember() == {"peak_equity": 200.0}
    assert MaxDrawdown(None).check(0, 0.0) is None  # no limit: never locks


def test_daily_loss_locks_until_the_day_ends_and_says_why_it_lifts() -> None:
    b = DailyLoss(5.0)
    b.track(DAY_MS + 10, 100.0)
    lock = b.check(DAY_MS + 20, 95.0)
    assert lock == Lock(R, 2 * DAY_MS, "daily loss 5.00% reached the limit 5.00%")
    assert b.lifted(2 * DAY_MS - 1) is None
    assert b.resume_blocker(DAY_MS + 30, 95.0) == "daily loss 5.00% reached the limit 5.00% today; it resets at 00:00 UTC"
    assert b.lifted(2 * DAY_MS) == "new UTC day: daily loss limit reset"
    assert b.lifted(2 * DAY_MS + 1) is None  # forgotten once lifted
    assert b.remember() == {"day": 1, "day_start_equity": 100.0, "reducing_day": None}


EQUITY = st.sampled_from([-1.0, 0.0, 50.0, 100.0, 100.0 + 1e-13, 1e300, float("nan")]) | st.floats()


@settings(max_examples=500, deadline=None)
@given(st.lists(EQUITY, min_size=1, max_size=6), st.sampled_from([None, -1.0, 0.0, 5.0, float("nan")]))
def test_a_breaker_locks_exactly_when_its_breach_rule_says(equities: list[float], limit: float | None) -> None:
    """The at-peak / above-the-open shortcut of ``check`` never hides a breach (a limit of 0 included)."""
    dd, daily = MaxDrawdown(limit), DailyLoss(limit)
    for i, equity in enumerate(equities):
        ts = i * DAY_MS // 2
        for breaker, rule in ((dd, lambda e: drawdown_breach(e, dd.peak_equity, limit)),
                              (daily, lambda e: daily_loss_breach(e, daily.day_start_equity, limit))):
            breaker.track(ts, equity)
            expected = rule(equity)
            lock = breaker.check(ts, equity)
            assert (lock.reason if lock is not None else None) == expected


def test_breakers_are_built_by_name_in_order_and_judge_a_stored_memory() -> None:
    assert set(BREAKERS) == {"max_drawdown", "daily_loss"}
    assert [b.name for b in make_breakers(RiskLimits())] == ["max_drawdown", "daily_loss"]  # today's default
    assert [b.name for b in make_breakers(RiskLimits(breakers=("daily_loss",)))] == ["daily_loss"]
    memory = BreakerMemory(day=3, day_start_equity=100.0, peak_equity=125.0, reducing_day=3)
    problems = resume_blockers(3 * DAY_MS + 5, 94.0, memory, RiskLimits())
    assert len(problems) == 2 and problems[0].startswith("drawdown") and problems[1].startswith("daily loss")
    assert resume_blockers(3 * DAY_MS + 5, 94.0, memory, RiskLimits(breakers=())) == []
    assert resume_blockers(0, 94.0, EMPTY_MEMORY, RiskLimits()) == []


# -- stored like every other fact ---------------------------------------------------------------


def test_the_engine_stores_every_trading_state_change(tmp_path: Path) -> None:
    async def go() -> list[dict]:
        store = await Store.open(tmp_path / "s.sqlite", "paper")
        portfolio = Portfolio(10_000.0)
        engine = Engine(strategies=[], gate=RiskGate(RiskLimits(max_drawdown_pct=15.0)), portfolio=portfolio,
                        store=store, clock=SimClock(0), executor=SimulatedExecutor(cash=lambda: portfolio.cash))
        seen: list[TradingStateChanged] = []
        engine.subscribe(lambda f: seen.append(f) if isinstance(f, TradingStateChanged) else None)
        await engine.on_event(Candle("binance", "BTC/USDT", "1h", 0, 1.0, 1.0, 1.0, 1.0, 1.0))
        portfolio.restore_cash(8_000.0)  # equity 20% below its peak: the drawdown breaker halts
        await engine.on_event(Candle("binance", "BTC/USDT", "1h", 3_600_000, 1.0, 1.0, 1.0, 1.0, 1.0))
        engine.set_state(TradingState.ACTIVE, "operator resume", force=True)
        await store.flush()
        rows = await store.fetch("trading_state_changes")
        await store.close()
        assert [(f.old, f.new) for f in seen] == [(r["old"], r["new"]) for r in rows]
        return rows

    rows = asyncio.run(go())
    assert [(r["ts"], r["old"], r["new"]) for r in rows] == [(7_200_000, "active", "halted"),
                                                              (7_200_000, "halted", "active")]
    assert rows[0]["reason"].startswith("drawdown 20.00%") and rows[1]["reason"] == "operator resume"
