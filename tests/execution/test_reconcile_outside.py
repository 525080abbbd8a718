"""Coins the bot cannot account for are never its own (issue 19, item 1).

Real ccxt client against the loopback exchange: someone buys BTC by hand on the account,
then a new engine on a new store reconciles. It halts, holds no position, places no
stop and sells nothing, even when its strategy says flat or an exit is due; only an
operator's flatten passes HALTED. With a ``stake`` the bot trades that much quote and
leaves the rest of the account alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.core.clock import LiveClock
from bot.engine.engine import EngineSettings
from bot.core.events import Direction
from bot.sim import SimExchange
from bot.execution.retry import RetryPolicy
from bot.store.store import Store
from risk.gate import TradingState
from tests.execution.test_execution_exchange import LIMITS, SYM, NoSleep, sandbox, signal, with_exchange


async def _manual_buy(client: Any, amount: float = 0.5) -> float:
    await client.create_order(SYM, "market", "buy", amount, None, {"newClientOrderId": "manual1"})
    return float((await client.fetch_balance())["total"]["BTC"])


async def _build(client: Any, store: Store, stake: float | None = None):  # type: ignore[no-untyped-def]
    return await sandbox(exchange_stops=True, stake=stake).exchange_engine(
        client, store, LiveClock(), [], [SYM], limits=LIMITS, engine=EngineSettings(),
        retry=RetryPolicy(sleep=NoSleep()))


def test_halted_on_coins_bought_by_hand_sells_nothing_and_stops_nothing(data_dir: Path, tmp_path: Path) -> None:
    async def body(sim: SimExchange, client: Any, store: Store) -> None:
        held = await _manual_buy(client)
        built = await _build(client, store)
        engine = built.engine
        assert engine.state is TradingState.HALTED
        assert "belongs to no order of ours" in engine.state_reason
        assert not engine.portfolio.position(SYM).is_open, "an unexplained balance became a position"
        price = float((await client.fetch_ticker(SYM))["last"])
        await engine.on_signal(signal(1, Direction.FLAT), price)  # the strategy says: get out
        await engine.flatten("operator")  # nothing of ours to flatten
        assert len(sim.matcher.orders) == 1, "the bot sent an order (a sell or a stop) on coins not its own"
        assert await client.fetch_open_orders(SYM) == []
        assert float((await client.fetch_balance())["total"]["BTC"]) == pytest.approx(held)
        assert await store.fetch("fills") == []

    with_exchange(data_dir, tmp_path, body)


def test_halted_lets_only_the_operators_flatten_reach_the_exchange(data_dir: Path, tmp_path: Path) -> None:
    async def body(sim: SimExchange, client: Any, store: Store) -> None:
        engine = (await _build(client, store)).engine
        price = float((await client.fetch_ticker(SYM))["last"])
        await engine.on_signal(signal(1, Direction.LONG), price)
        ours = engine.portfolio.position(SYM).amount
        assert ours > 0
        sent = len(sim.matcher.orders)  # the entry and its exchange-side stop
        engine.set_state(TradingState.HALTED, "test")
        await engine.on_signal(signal(2, Direction.FLAT), price)  # a strategy's exit: denied
        assert len(sim.matcher.orders) == sent and engine.portfolio.position(SYM).amount == ours
        await engine.flatten("operator")
        assert not engine.portfolio.position(SYM).is_open
        assert float((await client.fetch_balance())["total"]["BTC"]) < 1e-5  # at most dust below the lot size
        rows = await store.fetch("risk_decisions", "approved = 0")
        assert [r["check_name"] for r in rows] == ["trading_state"]

    with_exchange(data_dir, tmp_path, body)


def test_with_a_stake_the_bot_trades_its_stake_and_leaves_the_rest_alone(data_dir: Path, tmp_path: Path) -> None:
    async def body(sim: SimExchange, client: Any, store: Store) -> None:
        held = await _manual_buy(client)
        engine = (await _build(client, store, stake=2_000.0)).engine
        assert engine.state is TradingState.ACTIVE, engine.state_reason
        assert engine.portfolio.cash == pytest.approx(2_000.0)
        assert not engine.portfolio.position(SYM).is_open
        price = float((await client.fetch_ticker(SYM))["last"])
        await engine.on_signal(signal(1, Direction.LONG, size=100.0), price)
        ours = engine.portfolio.position(SYM).amount
        assert 0 < ours * price <= 2_000.0 * 0.11  # max_position_pct of its own equity, not the account's
        await engine.on_signal(signal(2, Direction.FLAT), price)
        assert not engine.portfolio.position(SYM).is_open
        assert float((await client.fetch_balance())["total"]["BTC"]) == pytest.approx(held, abs=1e-6)
        again = (await _build(client, store, stake=2_000.0)).engine  # a restart: stake + what fills made
        fills = await store.fetch("fills")
        flow = sum(f["amount"] * f["price"] - f["fee"] if f["side"] == "sell"
                   else -(f["amount"] * f["price"] + f["fee"]) for f in fills)
        assert again.state is TradingState.ACTIVE and again.portfolio.cash == pytest.approx(2_000.0 + flow)

    with_exchange(data_dir, tmp_path, body)
