"""The risk gate's checks, sizing, breakers and market rules, one behaviour at a time."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.clock import SimClock
from bot.engine.engine import Engine, EngineSettings
from bot.core.events import Direction, OrderIntent, Side, Signal
from bot.execution.paper_book import PaperBookExecutor
from bot.store.store import Store
from risk.breakers import daily_loss_breach, drawdown_breach, make_breakers
from risk.gate import RiskContext, RiskGate, RiskLimits, TradingState
from risk.market import MarketRules
from risk.portfolio import Portfolio
from risk.sizing import RollingATR, entry_amount
from risk.trading_state import TradingStateController

LIMITS = RiskLimits()


def entry(amount: float = 0.1, **kw: object) -> OrderIntent:
    base = dict(intent_id="s:1:entry", signal_id="s:1", symbol="BTC/USDT", side=Side.BUY,
                amount=amount, price=100.0, stop_price=94.0, strength=80.0, leg="entry")
    return OrderIntent(**(base | kw))  # type: ignore[arg-type]


def exit_(amount: float = 1.0) -> OrderIntent:
    return OrderIntent("x:BTC/USDT:stop", "x", "BTC/USDT", Side.SELL, amount, price=100.0,
                       reduce_only=True, strength=100.0, leg="stop")


def ctx(**kw: object) -> RiskContext:
    base = dict(state=TradingState.ACTIVE, equity=10_000.0, cash=10_000.0, price=100.0,
                position=0.0, open_positions=0, heat=0.0)
    return RiskContext(**(base | kw))  # type: ignore[arg-type]


def denied_by(intent: OrderIntent, c: RiskContext, limits: RiskLimits = LIMITS) -> str | None:
    d = RiskGate(limits).evaluate(intent, c)
    return None if d is None else d.check


def test_a_sane_entry_passes() -> None:
    assert denied_by(entry(5.0), ctx()) is None


@pytest.mark.parametrize(
    ("intent", "context", "check"),
    [
        (entry(), ctx(state=TradingState.HALTED), "trading_state"),
        (entry(), ctx(state=TradingState.REDUCING), "trading_state"),
        (entry(), ctx(seen_intents={"s:1:entry"}), "duplicate_intent"),
        (entry(intent_id="s:1:entry2"), ctx(entered_signals={"s:1"}), "duplicate_signal"),
        (entry(0.0), ctx(), "positive_amount"),
        (entry(strength=10.0), ctx(), "min_strength"),
        (entry(stop_price=None), ctx(), "stop_required"),
        (entry(stop_price=101.0), ctx(), "stop_required"),
        (entry(11.0), ctx(), "max_position_size"),
        (entry(5.0), ctx(position=6.0), "symbol_exposure"),
        (entry(), ctx(open_positions=5), "max_open_positions"),
        (entry(5.0), ctx(heat=1_990.0), "portfolio_heat"),
        (entry(), ctx(orders_last_minute=30), "order_rate"),
        (entry(0.001), ctx(market=MarketRules("BTC/USDT", min_notional=5.0)), "exchange_minimums"),
        (entry(0.123456), ctx(market=MarketRules("BTC/USDT", amount_step=0.001)), "exchange_minimums"),
        (entry(5.0), ctx(cash=100.0), "sufficient_balance"),
    ],
)
def test_each_check_denies_with_its_name(intent: OrderIntent, context: RiskContext, check: str) -> None:
    assert denied_by(intent, context) == check


def test_reducing_lets_reducing_orders_pass_halted_only_flatten_and_protective_stops() -> None:
    flatten = replace(exit_(1.0), leg="flatten")
    for state in (TradingState.HALTED, TradingState.REDUCING):
        assert denied_by(flatten, ctx(state=state, position=1.0)) is None
        assert denied_by(entry(), ctx(state=state)) == "trading_state"
    assert denied_by(exit_(1.0), ctx(state=TradingState.REDUCING, position=1.0)) is None
    # halted: a strategy's exit waits for the operator; its own position's stops still protect it
    assert denied_by(replace(exit_(1.0), leg="exit"), ctx(state=TradingState.HALTED, position=1.0)) \
        == "trading_state"
    for leg in ("stop", "take_profit", "trailing_stop"):
        assert denied_by(replace(exit_(1.0), leg=leg), ctx(state=TradingState.HALTED, position=1.0)) is None
    # ... and never more than the position the bot's own fills made
    assert denied_by(replace(exit_(2.0), leg="stop"), ctx(state=TradingState.HALTED, position=1.0)) \
        == "reduce_only_reduces"


def test_exits_ignore_entry_limits_but_cannot_oversell() -> None:
    c = ctx(position=1.0, heat=10_000.0, open_positions=99, orders_last_minute=999, cash=0.0)
    assert denied_by(exit_(1.0), c) is None
    assert denied_by(exit_(2.0), c) == "reduce_only_reduces"


def test_slippage_margin_tightens_the_caps() -> None:
    assert denied_by(entry(10.0), ctx()) is None
    assert denied_by(entry(10.0), ctx(slippage_margin=0.01)) == "max_position_size"


def test_a_raising_check_fails_closed() -> None:
    def broken(i: OrderIntent, c: RiskContext, l: RiskLimits) -> str | None:
        raise ZeroDivisionError("boom")

    d = RiskGate(LIMITS, (broken,)).evaluate(entry(), ctx())
    assert d is not None and d.check == "broken" and "ZeroDivisionError" in d.reason


def test_sizing_respects_caps_agreement_and_lot_size() -> None:
    assert entry_amount(10_000, 100, 50, 10, 10_000) == pytest.approx(10.0)
    assert entry_amount(10_000, 100, 5, 10, 10_000) == pytest.approx(5.0)
    assert entry_amount(10_000, 100, 10, 10, 300, fee_rate=0.0) == pytest.approx(3.0)
    # risk per trade: 1% of equity at a stop 10 below -> 10 units at most
    assert entry_amount(10_000, 100, 100, 100, 1e9, stop_price=90, risk_per_trade_pct=1) == pytest.approx(10.0)
    rules = MarketRules("X", amount_step=0.01)
    assert entry_amount(10_000, 3, 10, 10, 1e9, rules=rules) == pytest.approx(333.33)


def average_true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> float | None:
    """The batch definition the Engine's incremental ATR must equal (vectorised)."""
    if len(close) < n + 1:
        return None
    h, lo, prev = high[-n:], low[-n:], close[-n - 1 : -1]
    value = float(np.maximum(h - lo, np.maximum(np.abs(h - prev), np.abs(lo - prev))).mean())
    return value if np.isfinite(value) and value > 0 else None


def test_atr_matches_a_hand_computation() -> None:
    high = np.array([10.0, 12.0, 11.0])
    low = np.array([9.0, 10.0, 8.0])
    close = np.array([9.5, 11.5, 9.0])
    # TR2 = max(2, |12-9.5|, |10-9.5|) = 2.5; TR3 = max(3, |11-11.5|, |8-11.5|) = 3.5
    assert average_true_range(high, low, close, 2) == pytest.approx(3.0)
    assert average_true_range(high, low, close, 3) is None
    rolling = RollingATR(2)
    assert [rolling.update(h, lo, c) for h, lo, c in zip(high, low, close)] == [None, None, pytest.approx(3.0)]


@given(bars=st.lists(st.tuples(st.floats(1, 1e5), st.floats(0, 0.2), st.floats(0, 1)), min_size=1, max_size=60),
       n=st.integers(1, 20), seeded=st.integers(0, 60))
@settings(max_examples=60, deadline=None)
def test_rolling_atr_equals_the_batch_atr_bar_by_bar(
    bars: list[tuple[float, float, float]], n: int, seeded: int
) -> None:
    """The Engine's incremental ATR (seeded from a warmed buffer, then bar by bar) = the batch one."""
    close = np.array([p for p, _, _ in bars])
    high = close * (1 + np.array([r for _, r, _ in bars]))
    low = high - (high - close * 0.8) * np.array([f for _, _, f in bars])
    k = min(seeded, len(bars))
    rolling = RollingATR(n)
    rolling.seed(high[:k], low[:k], close[:k])
    for i in range(k, len(bars)):
        got, want = rolling.update(high[i], low[i], close[i]), average_true_range(
            high[: i + 1], low[: i + 1], close[: i + 1], n)
        assert (got is None) == (want is None)
        if want is not None:
            assert got == pytest.approx(want, rel=1e-12)


def test_breakers_reduce_on_daily_loss_and_halt_on_drawdown() -> None:
    assert daily_loss_breach(95.0, 100.0, 5.0) is not None
    assert daily_loss_breach(96.0, 100.0, 5.0) is None
    assert drawdown_breach(85.0, 100.0, 15.0) is not None
    t = TradingStateController(make_breakers(RiskLimits(daily_loss_limit_pct=5.0, max_drawdown_pct=15.0)))
    t.on_equity(0, 100.0)
    assert t.state is TradingState.ACTIVE
    t.on_equity(1_000, 94.0)
    assert t.state is TradingState.REDUCING
    t.on_equity(86_400_000 + 1, 94.0)  # a new day lifts the lock and starts from 94
    assert t.state is TradingState.ACTIVE and t.reason == "new UTC day: daily loss limit reset"
    t.on_equity(86_400_000 + 2, 84.0)
    assert t.state is TradingState.HALTED


def test_market_rules_round_down_and_name_dust() -> None:
    r = MarketRules("BTC/USDT", amount_step=1e-5, min_notional=5.0)
    assert r.round_amount(0.123456789) == pytest.approx(0.12345)
    assert r.dust(50_000.0) == pytest.approx(1e-4)
    assert not r.tradeable(0.00005, 50_000.0) and r.tradeable(0.0002, 50_000.0)


def test_every_denial_is_stored(tmp_path: Path) -> None:
    async def go() -> list[dict]:
        store = await Store.open(tmp_path / "t.sqlite", "p")
        portfolio = Portfolio(10_000.0)
        engine = Engine(strategies=[], gate=RiskGate(LIMITS), executor=PaperBookExecutor(),
                        portfolio=portfolio, store=store, clock=SimClock(1), settings=EngineSettings())
        engine.set_state(TradingState.HALTED, "test")
        sig = Signal("s", "BTC/USDT", "1h", 1, Direction.LONG, 90.0, size_pct=5.0)
        await engine.on_signal(sig, 100.0)
        await engine.on_signal(replace(sig, ts=2, strength=1.0), 100.0)
        await store.flush()
        rows = await store.fetch("risk_decisions")
        await store.close()
        return rows

    rows = asyncio.run(go())
    assert [(r["approved"], r["check_name"]) for r in rows] == [(0, "trading_state"), (0, "trading_state")]
