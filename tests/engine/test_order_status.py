"""Every order's status in the store follows it to its end (issue 19, item 8).

filled, partially filled and expired (cash ran short), canceled (daemon shutdown),
rejected (by the exchange); an order a killed paper daemon left live is expired at the
restart, never taken for live.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from bot.kernel.compose import run_backtest
from bot.core.clock import SimClock
from bot.config.load import load_settings
from bot.kernel.paper_restart import restore_paper
from bot.engine.engine import Engine, EngineSettings
from bot.core.events import Candle, Direction, Signal
from bot.execution.simulated import SimulatedExecutor
from bot.store.store import Store
from risk.gate import RiskGate, RiskLimits
from risk.portfolio import Portfolio
from tests.engine.test_engine_allin import ALL_IN
from tests.execution.test_execution_exchange import engine_for, signal, with_exchange

HOUR = 3_600_000


async def _statuses(path: Path, portfolio: str) -> dict[str, str]:
    async with await Store.open(path, portfolio) as store:
        return {r["order_id"]: r["status"] for r in await store.fetch("orders")}


def test_a_backtest_stores_how_every_order_ended(write_config) -> None:
    settings = load_settings(write_config(ALL_IN.replace('end = "2021-01-01"', 'end = "2018-04-01"')))
    result = asyncio.run(run_backtest(settings))
    statuses = asyncio.run(_statuses(settings.store.path, result.portfolio))
    *ended, last = statuses.values()
    assert len(ended) > 20
    assert set(ended) <= {"filled", "expired"}, "an order that ended is still stored as live"
    assert {"filled", "expired"} <= set(ended)  # all-in buys at a gap up: cut to the cash, rest expired
    assert last in {"submitted", "filled", "expired"}  # the data ended before the next open


def _engine(store: Store) -> Engine:
    portfolio = Portfolio(10_000.0)
    return Engine(strategies=[], gate=RiskGate(RiskLimits(max_orders_per_minute=None)),
                  executor=SimulatedExecutor(cash=lambda: portfolio.cash), portfolio=portfolio,
                  store=store, clock=SimClock(), settings=EngineSettings())


def _signal(i: int, direction: Direction) -> Signal:
    return Signal("t", "BTC/USDT", "1h", i * HOUR, direction, 90.0, size_pct=10.0)


def _bar(i: int, price: float = 100.0) -> Candle:
    return Candle("binance", "BTC/USDT", "1h", i * HOUR, price, price, price, price, 1.0)


async def test_shutdown_cancels_are_stored_and_release_the_entry(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "p.sqlite", "paper")
    engine = _engine(store)
    await engine.on_event(_bar(0))
    await engine.on_signal(_signal(0, Direction.LONG), 100.0)
    assert engine.reservations()
    n = await engine.cancel_orders(["BTC/USDT"], keep_protective=True, reason="daemon shutdown")
    await store.close()
    assert n == 1 and not engine.reservations()
    assert list((await _statuses(tmp_path / "p.sqlite", "paper")).values()) == ["canceled"]


async def test_a_killed_paper_daemons_live_orders_expire_at_restart(tmp_path: Path) -> None:
    db = tmp_path / "p.sqlite"
    store = await Store.open(db, "paper")
    engine = _engine(store)
    await engine.on_event(_bar(0))
    await engine.on_signal(_signal(0, Direction.LONG), 100.0)  # resting for the next open ...
    await store.flush()
    await store.close()  # ... when the process is killed
    assert list((await _statuses(db, "paper")).values()) == ["submitted"]
    store = await Store.open(db, "paper")
    await restore_paper(_engine(store), store)
    await store.close()
    assert list((await _statuses(db, "paper")).values()) == ["expired"]


def test_exchange_fills_and_rejections_reach_the_orders_table(data_dir: Path, tmp_path: Path) -> None:
    async def body(sim: Any, client: Any, store: Store) -> None:
        engine, _ = await engine_for(client, store, cash=100_000.0)
        price = float((await client.fetch_ticker("BTC/USDT"))["last"])
        await engine.on_signal(signal(1, Direction.LONG), price)
        await engine.on_signal(signal(2, Direction.FLAT), price)
        rows = await store.fetch("orders")
        assert [r["status"] for r in rows] == ["filled", "filled"]

    with_exchange(data_dir, tmp_path, body)
