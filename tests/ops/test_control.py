"""Operator actions change the trading only through the Engine's own paths: a halt stops new
entries (denied by the gate, stored) while stops keep working; a pending entry is cancelled;
resume lifts it; a paused symbol takes no entry while others do; every action is stored.

Real Engine, simulated executor, real SQLite.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.core.clock import SimClock
from bot.ops.control import ActionRefused, Operator
from bot.engine.engine import Engine, EngineSettings
from bot.core.events import Candle, Direction, Signal
from bot.execution.simulated import SimulatedExecutor
from bot.store.store import Store
from risk.gate import RiskGate, RiskLimits, TradingState
from risk.portfolio import Portfolio
from risk.stops import StopRules

HOUR = 3_600_000
T0 = 1_600_041_600_000
SYMS = ["BTC/USDT", "ETH/USDT"]


def bar(sym: str, i: int, price: float, low: float | None = None) -> Candle:
    return Candle("sim", sym, "1h", T0 + i * HOUR, price, price, low if low is not None else price, price, 1.0)


def long(sym: str, i: int) -> Signal:
    return Signal("op", sym, "1h", T0 + (i + 1) * HOUR - 1, Direction.LONG, 90.0, size_pct=5.0)


async def decisions(store: Store, sym: str) -> list[tuple[int, str | None]]:
    await store.flush()
    return [(r["approved"], r["check_name"]) for r in await store.fetch("risk_decisions", "symbol = ?", (sym,))]


def test_halt_stops_entries_keeps_stops_and_resume_lifts_it(tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite"

    async def go() -> None:
        async with await Store.open(db, "p") as store:
            portfolio = Portfolio(10_000.0)
            engine = Engine(strategies=[], gate=RiskGate(RiskLimits(max_orders_per_minute=None)),
                            portfolio=portfolio, store=store, clock=SimClock(T0),
                            executor=SimulatedExecutor(cash=lambda: portfolio.cash),
                            settings=EngineSettings(stops=StopRules(stop_loss_pct=5.0, take_profit_pct=None)))
            op = Operator(engine, store, symbols=SYMS, lock=asyncio.Lock())
            for sym in SYMS:
                await engine.on_event(bar(sym, 0, 100.0))
            await engine.on_signal(long("BTC/USDT", 0), 100.0)
            await engine.on_event(bar("BTC/USDT", 1, 100.0))  # the entry fills at this open
            btc = engine.portfolio.position("BTC/USDT")
            assert btc.is_open and btc.stop_price == pytest.approx(95.0, rel=1e-3)

            # an ETH entry is waiting for the next open when the operator halts
            await engine.on_signal(long("ETH/USDT", 0), 100.0)
            result = await op.halt("api@test", "drill")
            assert result.detail["cancelled_entries"] == 1
            assert engine.state is TradingState.HALTED
            assert await store.load_trading_state() == ("halted", "operator api@test: drill")
            await engine.on_event(bar("ETH/USDT", 1, 100.0))
            assert not engine.portfolio.position("ETH/USDT").is_open  # the cancelled entry never filled

            # halted: a new entry is denied by the gate and stored as such
            await engine.on_signal(long("ETH/USDT", 1), 100.0)
            assert (await decisions(store, "ETH/USDT"))[-1] == (0, "trading_state")
            # ... while the stop still works: the bar's low crosses it and the position is closed
            await engine.on_event(bar("BTC/USDT", 2, 96.0, low=90.0))
            assert not engine.portfolio.position("BTC/USDT").is_open
            await store.flush()
            assert [r["leg"] for r in await store.fetch("orders", "symbol = 'BTC/USDT'")][-1] == "stop"

            await op.resume("telegram:42", "drill over")
            assert engine.state is TradingState.ACTIVE
            assert (await store.load_trading_state() or ("",))[0] == "active"
            await engine.poll_trading_state(force=True)  # the stored state agrees: nothing re-halts
            assert engine.state is TradingState.ACTIVE

            # pause ETH: its entry is denied, BTC's passes; exits are never paused
            await op.pause("ETH/USDT", "api@test", "listing news")
            assert await store.load_pauses() == {"ETH/USDT": "operator api@test: listing news"}
            await engine.on_signal(long("ETH/USDT", 2), 100.0)
            assert (await decisions(store, "ETH/USDT"))[-1] == (0, "symbol_paused")
            await engine.on_signal(long("BTC/USDT", 3), 96.0)
            assert (await decisions(store, "BTC/USDT"))[-1] == (1, None)
            await op.pause("ETH/USDT", "api@test", "news digested", paused=False)
            await engine.on_signal(long("ETH/USDT", 4), 100.0)
            assert (await decisions(store, "ETH/USDT"))[-1] == (1, None)

            # force-exit goes through the gate as a reducing order
            await engine.on_event(bar("BTC/USDT", 5, 97.0))
            assert engine.portfolio.position("BTC/USDT").is_open
            await op.exit_position("BTC/USDT", "api@test", "manual")
            await engine.on_event(bar("BTC/USDT", 6, 97.0))
            assert not engine.portfolio.position("BTC/USDT").is_open
            with pytest.raises(ActionRefused):
                await op.exit_position("BTC/USDT", "api@test", "nothing to exit")
            with pytest.raises(ActionRefused):
                await op.pause("DOGE/USDT", "api@test", "not traded")

        with sqlite3.connect(db) as conn:
            stored = conn.execute("SELECT action, who, why, json_extract(detail_json, '$.symbol') FROM"
                                  " operator_actions WHERE done_ms IS NOT NULL ORDER BY id").fetchall()
        assert stored == [("halt", "api@test", "drill", None), ("resume", "telegram:42", "drill over", None),
                          ("pause", "api@test", "listing news", "ETH/USDT"),
                          ("unpause", "api@test", "news digested", "ETH/USDT"),
                          ("exit", "api@test", "manual", "BTC/USDT")]

    asyncio.run(go())


def test_resume_is_refused_while_the_drawdown_persists(tmp_path: Path) -> None:
    async def go() -> None:
        async with await Store.open(tmp_path / "bot.sqlite", "p") as store:
            portfolio = Portfolio(10_000.0)
            engine = Engine(strategies=[], gate=RiskGate(RiskLimits(max_drawdown_pct=15.0)), portfolio=portfolio,
                            store=store, clock=SimClock(T0), executor=SimulatedExecutor(cash=lambda: portfolio.cash))
            op = Operator(engine, store, symbols=SYMS, lock=asyncio.Lock())
            await engine.on_event(bar("BTC/USDT", 0, 100.0))
            portfolio.cash = 8_000.0  # equity 20% below its peak: the drawdown breaker halts
            await engine.on_event(bar("BTC/USDT", 1, 100.0))
            assert engine.state is TradingState.HALTED
            with pytest.raises(ActionRefused, match="drawdown"):
                await op.resume("api@test", "try")
            assert engine.state is TradingState.HALTED and await store.operator_actions() == []
            portfolio.cash = 9_000.0  # back within 15% of the peak
            await op.resume("api@test", "recovered")
            assert engine.state is TradingState.ACTIVE

    asyncio.run(go())
