"""Exchange-side protective stops: the Engine + ccxt executor against the loopback exchange."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.core.clock import LiveClock
from bot.engine.engine import Engine, EngineSettings
from bot.core.events import Direction, Side, Signal, Trade
from bot.sim import SimExchange
from bot.execution.exchange import ExchangeExecutor
from bot.execution.retry import RetryPolicy
from bot.store.store import Store
from risk.gate import RiskGate, RiskLimits
from risk.portfolio import Portfolio
from risk.stops import StopRules
from tests.execution.test_execution_exchange import sandbox, with_exchange
from tests.sim.test_sim_exchange_stops import (
    AFTER_MS,
    falling_hour,
    stop_settings,
    wait_for,
)

SYM = "BTC/USDT"
LIMITS = RiskLimits(max_orders_per_minute=None, daily_loss_limit_pct=None, max_drawdown_pct=None)


async def no_sleep(_: float) -> None:
    return None


def settings(stop_pct: float, trail_pct: float | None = None) -> EngineSettings:
    return EngineSettings(durable=True, stops=StopRules(stop_pct, None, trail_pct))


async def exchange_engine(client: Any, store: Store, engine_settings: EngineSettings) -> Engine:
    executor = ExchangeExecutor(client, store, LiveClock(), retry=RetryPolicy(sleep=no_sleep),
                                exchange_stops=True)
    rules = await executor.start([SYM])
    cash = float((await client.fetch_balance())["total"]["USDT"])
    return Engine(strategies=[], gate=RiskGate(LIMITS), executor=executor, portfolio=Portfolio(cash),
                  store=store, clock=LiveClock(), settings=engine_settings, markets=rules)


def long(ts: int, direction: Direction = Direction.LONG) -> Signal:
    return Signal("t", SYM, "1h", ts, direction, 90.0,
                  size_pct=5.0 if direction is Direction.LONG else 0.0)


def resting_stops(sim: SimExchange) -> list[Any]:
    return [o for o in sim.matcher.open_orders(None) if o.type == "STOP_LOSS_LIMIT"]


def test_the_exchange_stop_follows_the_position(data_dir: Path, tmp_path: Path) -> None:
    async def body(sim: SimExchange, client: Any, store: Store) -> None:
        engine = await exchange_engine(client, store, settings(5.0, trail_pct=2.0))
        price = float((await client.fetch_ticker(SYM))["last"])
        await engine.on_signal(long(1), price)
        pos = engine.portfolio.position(SYM)
        (stop,) = resting_stops(sim)
        assert stop.side == "SELL" and stop.stop_price == pytest.approx(pos.stop_price, rel=1e-6)
        # the stop covers the position on the exchange's 0.00001 step: the fee-sized dust below
        # one step cannot be sold, on Binance either
        assert stop.qty == pytest.approx(float(client.amount_to_precision(SYM, pos.amount)))
        assert 0 <= pos.amount - stop.qty < 1e-5
        # arming again is idempotent: nothing new reaches the exchange
        orders = len(sim.matcher.orders)
        await engine.rearm_exchange_stops()
        assert len(sim.matcher.orders) == orders
        # the trailing stop ratchets: cancel + replace at the new level
        await engine.on_event(Trade("binance", SYM, 2, price * 1.01, 0.1, Side.BUY))
        raised = engine.portfolio.position(SYM).stop_price
        assert raised is not None and raised > pos.stop_price
        assert sim.matcher.orders[stop.order_id].status == "CANCELED"
        (moved,) = resting_stops(sim)
        assert moved.stop_price == pytest.approx(raised, rel=1e-6)
        # a tiny further rise does not churn orders
        await engine.on_event(Trade("binance", SYM, 3, price * 1.0101, 0.1, Side.BUY))
        assert resting_stops(sim) == [moved]
        # another leg exits: the stop is cancelled first, the position sold once
        await engine.on_signal(long(4, Direction.FLAT), price)
        assert resting_stops(sim) == [] and not engine.portfolio.position(SYM).is_open
        btc = [b for b in sim.matcher.balances() if b["asset"] == "BTC"][0]
        assert float(btc["locked"]) == 0.0 and float(btc["free"]) < 1e-5  # dust under one step
        rows = await store.fetch("orders")
        assert [r["leg"] for r in rows] == ["entry", "stop", "stop", "exit"]

    with_exchange(stop_settings(data_dir, AFTER_MS, 1.0), tmp_path, body)


def test_restart_rearms_a_missing_stop_before_trading(data_dir: Path, tmp_path: Path) -> None:
    async def body(sim: SimExchange, client: Any, store: Store) -> None:
        engine = await exchange_engine(client, store, settings(5.0))
        await engine.on_signal(long(1), float((await client.fetch_ticker(SYM))["last"]))
        (stop,) = resting_stops(sim)
        await client.cancel_order(str(stop.order_id), SYM)  # lost while the bot was down
        built = await sandbox(exchange_stops=True).exchange_engine(
            client, store, LiveClock(), [], [SYM], limits=LIMITS, engine=settings(5.0),
            retry=RetryPolicy(sleep=no_sleep))
        assert built.report.clean
        pos = built.engine.portfolio.position(SYM)
        (again,) = resting_stops(sim)
        assert again.order_id != stop.order_id and again.qty == pytest.approx(stop.qty)
        # and a second restart finds it in place: nothing is sent
        orders = len(sim.matcher.orders)
        await sandbox(exchange_stops=True).exchange_engine(
            client, store, LiveClock(), [], [SYM], limits=LIMITS, engine=settings(5.0),
            retry=RetryPolicy(sleep=no_sleep))
        assert len(sim.matcher.orders) == orders

    with_exchange(stop_settings(data_dir, AFTER_MS, 1.0), tmp_path, body)


def test_a_stop_triggered_while_down_closes_the_position_on_restart(data_dir: Path, tmp_path: Path) -> None:
    async def body(sim: SimExchange, client: Any, store: Store) -> None:
        engine = await exchange_engine(client, store, settings(0.2))
        await engine.on_signal(long(1), float((await client.fetch_ticker(SYM))["last"]))
        (stop,) = resting_stops(sim)

        async def filled() -> bool:
            await client.fetch_time()  # any request lets the exchange judge its stops
            return stop.status == "FILLED"

        assert await wait_for(filled), "the price never fell through the stop"
        built = await sandbox(exchange_stops=True).exchange_engine(
            client, store, LiveClock(), [], [SYM], limits=LIMITS, engine=settings(0.2),
            retry=RetryPolicy(sleep=no_sleep))
        assert built.report.clean, built.report.mismatches
        assert not built.engine.portfolio.position(SYM).is_open and resting_stops(sim) == []
        fills = await store.fetch("fills")
        assert [f["side"] for f in fills] == ["buy", "sell"]

    with_exchange(stop_settings(data_dir, falling_hour(data_dir), 1200.0), tmp_path, body)
