"""Hypothesis invariants of the Engine + risk gate over random signal and price sequences.

After every market event: no open position lacks a stop; the committed heat (open
positions plus approved, unfilled entries) never exceeds its cap at the equity of
the decision that last added heat; no position is worth more than its cap at the
equity of the decision that opened it (with the fill-protection margin).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.clock import SimClock
from bot.engine import Engine, EngineSettings
from bot.events import Candle, Direction, OrderIntent, Signal
from bot.execution.paper_book import PaperBookExecutor
from bot.store import Store
from risk.gate import RiskGate, RiskLimits
from risk.portfolio import Portfolio
from risk.stops import StopRules
from strategies.base import BarContext, Strategy

SYMBOLS = ("AAA/USDT", "BBB/USDT", "CCC/USDT")
HOUR = 3_600_000
TOL = 1e-6


class Scripted(Strategy):
    """Plays back hypothesis-chosen (direction, strength, size) per bar and symbol."""

    def __init__(self, script: dict[tuple[str, int], tuple[bool, float, float]]) -> None:
        super().__init__("scripted", SYMBOLS, "1h")
        self.script = script

    def evaluate(self, ctx: BarContext) -> Signal | None:
        step = ctx.candle.ts // HOUR
        choice = self.script.get((ctx.candle.symbol, step))
        if choice is None:
            return None
        long, strength, size = choice
        return self.signal(ctx, Direction.LONG if long else Direction.FLAT, strength, size_pct=size)


class Recording(PaperBookExecutor):
    """The paper executor, remembering the caps in force when each entry was approved."""

    def __init__(self, engine_ref: list[Engine], **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.engine_ref = engine_ref
        self.heat_cap = float("inf")
        self.position_cap: dict[str, float] = {}

    async def submit(self, intent: OrderIntent, now_ms: int):  # type: ignore[no-untyped-def]
        engine = self.engine_ref[0]
        if not intent.reduce_only:
            equity = engine.portfolio.equity()
            self.heat_cap = equity * engine.gate.limits.max_heat_pct / 100.0
            self.position_cap[intent.symbol] = equity * engine.gate.limits.max_symbol_exposure_pct / 100.0
        return await super().submit(intent, now_ms)


bars = st.lists(
    st.tuples(st.floats(-0.12, 0.12), st.floats(0.0, 0.08), st.floats(0.0, 0.08)),
    min_size=5, max_size=40,
)
signal = st.one_of(st.none(), st.tuples(st.booleans(), st.floats(0, 100), st.floats(0, 60)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    paths=st.lists(bars, min_size=3, max_size=3),
    signals=st.lists(signal, min_size=120, max_size=120),
    trailing=st.one_of(st.none(), st.floats(1.0, 10.0)),
    heat_pct=st.floats(5.0, 30.0),
    position_pct=st.floats(1.0, 40.0),
)
def test_caps_and_stops_hold(paths, signals, trailing, heat_pct, position_pct) -> None:  # type: ignore[no-untyped-def]
    limits = RiskLimits(max_position_pct=position_pct, max_symbol_exposure_pct=position_pct,
                        max_heat_pct=heat_pct, min_strength=30.0, max_orders_per_minute=None,
                        daily_loss_limit_pct=None, max_drawdown_pct=None)
    script = {}
    for i, choice in enumerate(signals):
        if choice is not None:
            script[(SYMBOLS[i % 3], i // 3)] = choice
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run(Path(tmp) / "inv.sqlite", paths, script, limits, trailing))


async def _run(db: Path, paths, script, limits: RiskLimits, trailing: float | None) -> None:  # type: ignore[no-untyped-def]
    store = await Store.open(db, "inv")
    portfolio = Portfolio(10_000.0)
    ref: list[Engine] = []
    settings_ = EngineSettings(stops=StopRules(6.0, 12.0, trailing), slippage_margin_bps=50.0)
    executor = Recording(ref, cash=lambda: portfolio.cash, protection_bps=50.0, slippage_bps=5.0)
    engine = Engine(strategies=[Scripted(script)], gate=RiskGate(limits), executor=executor,
                    portfolio=portfolio, store=store, clock=SimClock(), settings=settings_)
    ref.append(engine)
    prices = {s: 100.0 for s in SYMBOLS}
    n = max(len(p) for p in paths)
    for step in range(n):
        for symbol, path in zip(SYMBOLS, paths, strict=True):
            if step >= len(path):
                continue
            move, up, down = path[step]
            o = prices[symbol]
            c = max(0.01, o * (1 + move))
            h, lo = max(o, c) * (1 + up), min(o, c) * (1 - down)
            prices[symbol] = c
            await engine.on_event(Candle("sim", symbol, "1h", step * HOUR, o, h, lo, c, 1.0))
            assert engine.unprotected() == [], "an open position has no stop"
            assert engine.committed_heat() <= executor.heat_cap * (1 + TOL) + TOL
            assert portfolio.cash >= -TOL
            for pos in portfolio.open_positions():
                value = pos.amount * pos.avg_price
                assert value <= executor.position_cap[pos.symbol] * (1 + TOL) + TOL
    await store.close()
