"""A strategy that raises never ends the trading loop (issue 19, item 7).

Each failure is logged, counted and stored as a ``StrategyFailed`` fact; after
``max_strategy_failures`` in a row the strategy is disabled, and the open position it
left keeps its stop, which still closes it.
"""

from __future__ import annotations

from pathlib import Path

from bot.core.clock import SimClock
from bot.engine.engine import Engine, EngineSettings
from bot.core.events import Candle, Direction, Signal
from bot.execution.simulated import SimulatedExecutor
from bot.feeds.replay import ReplayFeed
from bot.store.store import Store
from risk.gate import RiskGate, RiskLimits
from risk.portfolio import Portfolio
from risk.stops import StopRules
from strategies.base import BarContext, Strategy

HOUR = 3_600_000
SYM = "BTC/USDT"


class Breaks(Strategy):
    """Long on the first bar, then its code raises on every bar from ``breaks_at`` on."""

    def __init__(self, breaks_at: int, recovers_at: int | None = None) -> None:
        super().__init__("breaks", (SYM,), "1h")
        self.breaks_at, self.recovers_at = breaks_at, recovers_at
        self.calls = 0

    def evaluate(self, ctx: BarContext) -> Signal | None:
        self.calls += 1
        bar = ctx.candle.ts // HOUR
        if self.breaks_at <= bar and (self.recovers_at is None or bar < self.recovers_at):
            raise ZeroDivisionError("model blew up")
        return self.signal(ctx, Direction.LONG, 90.0, size_pct=10.0)


def _bars(closes: list[float]) -> list[Candle]:
    out, prev = [], closes[0]
    for i, c in enumerate(closes):
        out.append(Candle("binance", SYM, "1h", i * HOUR, prev, max(prev, c), min(prev, c), c, 1.0))
        prev = c
    return out


async def _run(tmp_path: Path, strategy: Strategy, closes: list[float]) -> tuple[Engine, Store]:
    store = await Store.open(tmp_path / "guard.sqlite", "p")
    portfolio = Portfolio(10_000.0)
    engine = Engine(strategies=[strategy], gate=RiskGate(RiskLimits(max_orders_per_minute=None)),
                    executor=SimulatedExecutor(slippage_bps=0.0, cash=lambda: portfolio.cash),
                    portfolio=portfolio, store=store, clock=SimClock(),
                    settings=EngineSettings(stops=StopRules(5.0, None), max_strategy_failures=3))
    await engine.run(ReplayFeed([_bars(closes)]))
    return engine, store


async def test_a_failing_strategy_is_disabled_and_its_position_still_stopped(tmp_path: Path) -> None:
    strategy = Breaks(breaks_at=2)
    closes = [100.0, 100.0, 101.0, 102.0, 101.0, 100.0, 99.0, 90.0, 89.0, 88.0]  # 90 < the 5% stop
    engine, store = await _run(tmp_path, strategy, closes)
    try:
        failures = await store.fetch("strategy_failures")
        fills = await store.fetch("fills")
    finally:
        await store.close()
    assert strategy.calls == 2 + 3, "a disabled strategy was called again"
    assert [(f["consecutive"], f["disabled"]) for f in failures] == [(1, 0), (2, 0), (3, 1)]
    assert all(f["strategy"] == "breaks" and "ZeroDivisionError" in f["error"] for f in failures)
    assert engine.stats.candles == len(closes), "the loop ended early"
    assert [f["side"] for f in fills] == ["buy", "sell"]  # the stop closed the position
    assert not engine.portfolio.position(SYM).is_open


async def test_a_success_resets_the_count(tmp_path: Path) -> None:
    strategy = Breaks(breaks_at=2, recovers_at=4)
    engine, store = await _run(tmp_path, strategy, [100.0] * 10)
    try:
        failures = await store.fetch("strategy_failures")
    finally:
        await store.close()
    assert [f["consecutive"] for f in failures] == [1, 2]
    assert strategy.calls == 10


async def test_evaluations_are_timed_without_touching_the_strategy(tmp_path: Path) -> None:
    """The daemon's inference metric comes through ``Engine.time_evaluations``; the strategy's
    own ``evaluate`` stays as it is, and a failing call is timed as well."""
    store = await Store.open(tmp_path / "timed.sqlite", "p")
    strategy = Breaks(breaks_at=2)
    portfolio = Portfolio(10_000.0)
    engine = Engine(strategies=[strategy], gate=RiskGate(RiskLimits(max_orders_per_minute=None)),
                    executor=SimulatedExecutor(cash=lambda: portfolio.cash), portfolio=portfolio, store=store,
                    clock=SimClock(), settings=EngineSettings(max_strategy_failures=10))
    timed: list[tuple[str, float]] = []
    engine.time_evaluations(lambda name, seconds: timed.append((name, seconds)))
    try:
        await engine.run(ReplayFeed([_bars([100.0, 101.0, 102.0, 103.0])]))
    finally:
        await store.close()
    assert "evaluate" not in vars(strategy)  # nothing was patched onto the instance
    assert [name for name, _ in timed] == ["breaks"] * 4 == ["breaks"] * strategy.calls
    assert all(seconds >= 0.0 for _, seconds in timed)
