"""Engine state across restarts and operators: breakers persisted, a stored halt honoured live.

Real Engine, real SQLite (two connections on one file where an operator is involved).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.core.clock import LiveClock, SimClock
from bot.engine.engine import Engine, EngineSettings
from bot.core.events import Candle, Direction, Signal
from bot.sim import SimExchange, SimSettings, make_ccxt_binance
from bot.execution.retry import RetryPolicy
from bot.execution.simulated import SimulatedExecutor
from bot.store.store import Store
from risk.gate import RiskGate, RiskLimits, TradingState
from risk.portfolio import Portfolio
from tests.execution.test_execution_exchange import sandbox

SYM = "BTC/USDT"
HOUR = 3_600_000
DAY0 = 1_600_041_600_000  # a UTC midnight
LIMITS = RiskLimits(max_orders_per_minute=None, daily_loss_limit_pct=5.0, max_drawdown_pct=15.0)


def candle(i: int, price: float = 100.0) -> Candle:
    return Candle("sim", SYM, "1h", DAY0 + i * HOUR, price, price, price, price, 1.0)


def engine(store: Store, cash: float, **kw: Any) -> Engine:
    portfolio = Portfolio(cash)
    return Engine(strategies=[], gate=RiskGate(LIMITS), portfolio=portfolio, store=store,
                  executor=SimulatedExecutor(cash=lambda: portfolio.cash), clock=SimClock(DAY0),
                  settings=EngineSettings(**kw))


def test_breakers_survive_a_restart(tmp_path: Path) -> None:
    async def go() -> None:
        db = tmp_path / "bot.sqlite"
        async with await Store.open(db, "p") as store:
            first = engine(store, 10_000.0, persist_breakers=True)
            for i in range(2):
                await first.on_event(candle(i))
            await store.flush()
        # same UTC day, 6% less equity: the day's start is remembered -> REDUCING
        async with await Store.open(db, "p") as store:
            again = engine(store, 9_400.0, persist_breakers=True)
            memory = await again.restore_breakers(DAY0 + 3 * HOUR)
            assert memory is not None and memory.day_start_equity == 10_000.0
            assert again.state is TradingState.REDUCING
        # days later, 20% below the peak: the peak is remembered -> HALTED
        async with await Store.open(db, "p") as store:
            later = engine(store, 8_000.0, persist_breakers=True)
            await later.restore_breakers(DAY0 + 50 * HOUR)
            assert later.state is TradingState.HALTED and "drawdown" in later.state_reason
        # without the persisted memory the same restart would have traded on
        async with await Store.open(tmp_path / "fresh.sqlite", "p") as store:
            fresh = engine(store, 8_000.0, persist_breakers=True)
            await fresh.restore_breakers(DAY0 + 50 * HOUR)
            assert fresh.state is TradingState.ACTIVE

    asyncio.run(go())


def test_exchange_restart_remembers_the_peak(data_dir: Path, tmp_path: Path) -> None:
    async def go() -> None:
        sim_settings = SimSettings(data_dir=data_dir, symbols=(SYM,), timeframes=("1h",),
                                   book_replay=False, start_ms=1_600_000_000_000)
        async with SimExchange(sim_settings) as sim:
            client = make_ccxt_binance(sim.http_url, api_key="sim-key", secret="sim-secret", pro=False)
            client.options["adjustForTimeDifference"] = False

            async def start() -> Engine:
                built = await sandbox().exchange_engine(client, store, LiveClock(), [], [SYM], limits=LIMITS,
                                                        engine=EngineSettings(), retry=RetryPolicy())
                return built.engine

            try:
                async with await Store.open(tmp_path / "bot.sqlite", "sandbox") as store:
                    first = await start()
                    assert first.state is TradingState.ACTIVE
                    assert (await store.load_breakers()).peak_equity == 100_000.0  # type: ignore[union-attr]
                    sim.matcher.free["USDT"] -= 20_000.0  # equity falls 20% while the bot is down
                    second = await start()
                    assert second.state is TradingState.HALTED, second.state_reason
            finally:
                await client.close()

    asyncio.run(go())


def test_a_running_engine_honours_a_stored_halt(tmp_path: Path) -> None:
    async def go() -> None:
        db = tmp_path / "bot.sqlite"
        async with await Store.open(db, "p") as store, await Store.open(db, "p") as operator:
            eng = engine(store, 10_000.0, state_poll_ms=HOUR)
            await eng.on_event(candle(0))
            await eng.on_event(candle(1))
            assert eng.state is TradingState.ACTIVE
            await operator.set_trading_state("halted", "neuralbot halt", DAY0 + HOUR)  # other process
            await eng.on_event(candle(2))  # the next poll (one clock-hour later) sees it
            assert eng.state is TradingState.HALTED and "neuralbot halt" in eng.state_reason
            await eng.on_signal(Signal("s", SYM, "1h", DAY0 + 3 * HOUR, Direction.LONG, 90.0,
                                       size_pct=5.0), 100.0)
            assert eng.stats.denials_by_check["trading_state"] == 1
            # backtests never poll: nothing is read from the store per event
            quiet = engine(store, 10_000.0)
            await quiet.on_event(candle(0))
            assert quiet.state is TradingState.ACTIVE

    asyncio.run(go())
