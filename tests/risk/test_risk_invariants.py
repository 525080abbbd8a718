"""Hypothesis invariants of the Engine + risk gate over random signal and price sequences.

After every market event: no open position lacks a stop; the committed heat (open
positions plus approved, unfilled entries) never exceeds its cap at the equity of
the decision that last added heat; no position is worth more than its cap at the
equity of the decision that opened it (with the fill-protection margin); no reservation
outlives its order (every executor closes what it will not fill).
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.clock import SimClock
from bot.engine.engine import Engine, EngineSettings
from bot.core.events import Candle, Direction, OrderIntent, Side, Signal
from bot.execution.paper_book import PaperBookExecutor
from bot.execution.simulated import SimulatedExecutor
from bot.store.store import Store
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
    script[(SYMBOLS[0], 0)] = (True, 100.0, position_pct)  # at least one entry fills: caps are tested
    with tempfile.TemporaryDirectory() as tmp:
        fills = asyncio.run(_run(Path(tmp) / "inv.sqlite", paths, script, limits, trailing))
    assert fills, "no trade: the invariants were not exercised"


async def _run(db: Path, paths, script, limits: RiskLimits, trailing: float | None) -> list[dict]:  # type: ignore[no-untyped-def]
    store = await Store.open(db, "inv")
    portfolio = Portfolio(10_000.0)
    ref: list[Engine] = []
    settings_ = EngineSettings(stops=StopRules(6.0, 12.0, trailing), slippage_margin_bps=50.0)
    executor = Recording(ref, cash=lambda: portfolio.cash, protection_bps=50.0, slippage_bps=5.0)
    engine = Engine(strategies=[Scripted(script)], gate=RiskGate(limits), executor=executor,
                    portfolio=portfolio, store=store, clock=SimClock(), settings=settings_)
    ref.append(engine)
    try:
        await _drive(engine, executor, portfolio, paths)
        await store.flush()
        return await store.fetch("fills")
    finally:
        await store.close()


async def _drive(engine: Engine, executor: Recording, portfolio: Portfolio, paths) -> None:  # type: ignore[no-untyped-def]
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
            # the gate's context takes equity and heat from one snapshot: the same floats as asked apart
            ctx = engine.flow.risk_context(OrderIntent("probe", "probe", symbol, Side.BUY, 1.0), c)
            assert (repr(float(ctx.equity)), repr(float(ctx.heat))) == (
                repr(float(portfolio.equity())), repr(float(engine.committed_heat())))
            assert portfolio.cash >= -TOL
            for pos in portfolio.open_positions():
                value = pos.amount * pos.avg_price
                assert value <= executor.position_cap[pos.symbol] * (1 + TOL) + TOL
            assert set(engine.reservations()) <= {o.intent_id for o in executor.open.values()}


def _open_intents(executor: SimulatedExecutor | PaperBookExecutor) -> set[str]:
    if isinstance(executor, SimulatedExecutor):
        return {o.intent_id for s in SYMBOLS for o in executor.pending(s)}
    return {o.intent_id for o in executor.open.values()}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    gaps=st.lists(st.floats(-0.25, 0.25), min_size=3, max_size=30),
    signals=st.lists(st.tuples(st.sampled_from(SYMBOLS), st.booleans(),
                               st.one_of(st.just(100.0), st.floats(1.0, 100.0))),
                     min_size=3, max_size=30),
    paper_book=st.booleans(),
    max_open=st.integers(1, 3),
)
def test_no_reservation_outlives_its_order(gaps, signals, paper_book, max_open) -> None:  # type: ignore[no-untyped-def]
    """All-in entries with gaps between close and next open: buys are cut to the cash there is."""
    script = {(sym, step): (long, 100.0, size) for step, (sym, long, size) in enumerate(signals)}
    limits = RiskLimits(max_position_pct=100.0, max_symbol_exposure_pct=100.0, max_open_positions=max_open,
                        max_heat_pct=100.0, min_strength=0.0, max_orders_per_minute=None,
                        daily_loss_limit_pct=None, max_drawdown_pct=None)
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run_gaps(Path(tmp) / "res.sqlite", gaps, script, limits, paper_book))


async def _run_gaps(db: Path, gaps, script, limits: RiskLimits, paper_book: bool) -> None:  # type: ignore[no-untyped-def]
    store = await Store.open(db, "res")
    portfolio = Portfolio(10_000.0)
    executor: SimulatedExecutor | PaperBookExecutor = (
        PaperBookExecutor(cash=lambda: portfolio.cash, slippage_bps=0.0) if paper_book
        else SimulatedExecutor(slippage_bps=0.0, cash=lambda: portfolio.cash))
    engine = Engine(strategies=[Scripted(script)], gate=RiskGate(limits), executor=executor,
                    portfolio=portfolio, store=store, clock=SimClock(),
                    settings=EngineSettings(stops=StopRules(99.0, None), slippage_margin_bps=0.0))
    closes = {s: 100.0 for s in SYMBOLS}
    try:
        for step, gap in enumerate(gaps):
            for symbol in SYMBOLS:
                o = closes[symbol] * (1 + gap)  # the bar opens away from the last close
                c = o * (1 - gap / 2)
                closes[symbol] = c
                await engine.on_event(Candle("sim", symbol, "1h", step * HOUR, o, max(o, c), min(o, c), c, 1.0))
                assert set(engine.reservations()) <= _open_intents(executor), "a reservation outlived its order"
                assert portfolio.cash >= -TOL
    finally:
        await store.close()
