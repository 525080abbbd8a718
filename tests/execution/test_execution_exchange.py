"""The ccxt exchange executor against the loopback Binance exchange (real ccxt, real SQLite)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bot.core.clock import LiveClock
from bot.engine.engine import Engine, EngineSettings
from bot.core.events import Direction, OrderDenied, OrderFilled, OrderIntent, Side, Signal
from bot.sim import FaultSettings, SimExchange, SimSettings, make_ccxt_binance
from bot.execution.exchange import ExchangeExecutor
from bot.core.orders import OrderState, client_order_id
from bot.execution.retry import RetryPolicy
from bot.config.settings import Settings
from bot.kernel.kernel import Kernel
from bot.store.store import Store
from risk.gate import RiskGate, RiskLimits, TradingState
from risk.portfolio import Portfolio

SYM = "BTC/USDT"
LIMITS = RiskLimits(max_orders_per_minute=None, daily_loss_limit_pct=None, max_drawdown_pct=None)


def sandbox(**exchange: Any) -> Kernel:
    """The kernel of a sandbox daemon (``[exchange]`` fields as given); tests hand in the client."""
    return Kernel(Settings(mode="sandbox", feed={"source": "exchange"}, exchange=exchange))


def sim_settings(data_dir: Path, **kw: Any) -> SimSettings:
    return SimSettings(data_dir=data_dir, symbols=(SYM,), timeframes=("1h",), book_replay=False,
                       speed=1.0, start_ms=1_600_000_000_000, **kw)


Body = Callable[[SimExchange, Any, Store], Awaitable[None]]


def with_exchange(data_dir: Path | SimSettings, tmp_path: Path, body: Body, timeout_ms: int = 10_000) -> None:
    """Run ``body(sim, client, store)`` against a loopback exchange (``sim_settings(data_dir)``
    unless given) with a signed ccxt REST client and a fresh SQLite store."""
    settings = data_dir if isinstance(data_dir, SimSettings) else sim_settings(data_dir)

    async def go() -> None:
        async with SimExchange(settings) as sim:
            client = make_ccxt_binance(sim.http_url, api_key="sim-key", secret="sim-secret",
                                       pro=False, timeout=timeout_ms)
            client.options["adjustForTimeDifference"] = False
            store = await Store.open(tmp_path / "bot.sqlite", "sandbox")
            try:
                await body(sim, client, store)
            finally:
                await store.close()
                await client.close()

    asyncio.run(go())


def buy(signal: str, amount: float = 0.01) -> OrderIntent:
    return OrderIntent(f"{signal}:entry", signal, SYM, Side.BUY, amount, price=10_000.0,
                       stop_price=9_000.0, strength=90.0, leg="entry")


class NoSleep:
    def __init__(self, on_sleep: Callable[[], None] | None = None) -> None:
        self.calls: list[float] = []
        self.on_sleep = on_sleep

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        if self.on_sleep is not None:
            self.on_sleep()


def test_a_request_that_times_out_after_placement_makes_exactly_one_order(data_dir: Path, tmp_path: Path) -> None:
    async def body(sim: SimExchange, client: Any, store: Store) -> None:
        sim.set_faults(FaultSettings(order_timeout_every_n=1, order_timeout_hang_s=3.0))
        executor = ExchangeExecutor(client, store, LiveClock(), retry=RetryPolicy(sleep=NoSleep()))
        await executor.start([SYM])
        facts = await executor.submit(buy("s1"), 1)
        assert sim.counters.order_timeouts == 1
        assert len(sim.matcher.orders) == 1
        fills = [f for f in facts if isinstance(f, OrderFilled)]
        assert sum(f.amount for f in fills) == pytest.approx(0.01 * 0.999)  # net of base fee
        (row,) = await store.load_exchange_orders()
        assert row["state"] == OrderState.FILLED.value and row["exchange_order_id"] == "1"
        # the same intent again (a retry, a restart): looked up, never re-sent
        assert await executor.submit(buy("s1"), 2) == []
        assert len(sim.matcher.orders) == 1

    with_exchange(data_dir, tmp_path, body, timeout_ms=500)


def test_429_backs_off_then_looks_up_before_resending(data_dir: Path, tmp_path: Path) -> None:
    async def body(sim: SimExchange, client: Any, store: Store) -> None:
        sim.set_faults(FaultSettings(http_429_every_n=1, http_fault_paths=("/api/v3/order",)))
        sleep = NoSleep(on_sleep=lambda: sim.set_faults(FaultSettings()))
        policy = RetryPolicy(sleep=sleep, throttle_floor_s=1.0)
        executor = ExchangeExecutor(client, store, LiveClock(), retry=policy)
        await executor.start([SYM])
        facts = await executor.submit(buy("s2"), 1)
        assert sim.counters.http_429 == 1
        assert sleep.calls and sleep.calls[0] >= 0.75  # backed off at least ~the throttle floor
        assert len(sim.matcher.orders) == 1
        assert any(isinstance(f, OrderFilled) for f in facts)

    with_exchange(data_dir, tmp_path, body)


def test_lookups_that_keep_failing_leave_the_order_submitted_never_resent(data_dir: Path, tmp_path: Path) -> None:
    async def body(sim: SimExchange, client: Any, store: Store) -> None:
        sim.set_faults(FaultSettings(http_5xx_every_n=1, http_fault_paths=("/api/v3/order",)))
        executor = ExchangeExecutor(client, store, LiveClock(),
                                    retry=RetryPolicy(sleep=NoSleep(), max_attempts=3))
        await executor.start([SYM])
        assert await executor.submit(buy("s3"), 1) == []
        (row,) = await store.load_exchange_orders()
        assert row["state"] == OrderState.SUBMITTED.value
        assert len(sim.matcher.orders) == 0  # every create was answered 503 before matching
        sim.set_faults(FaultSettings())
        facts = await executor.resolve(executor.orders[row["client_order_id"]])
        assert facts == [] or not any(isinstance(f, OrderFilled) for f in facts)
        assert len(sim.matcher.orders) == 0  # resolving never places an order

    with_exchange(data_dir, tmp_path, body)


async def engine_for(client: Any, store: Store, cash: float) -> tuple[Engine, ExchangeExecutor]:
    executor = ExchangeExecutor(client, store, LiveClock(), retry=RetryPolicy(sleep=NoSleep()))
    rules = await executor.start([SYM])
    engine = Engine(strategies=[], gate=RiskGate(LIMITS), executor=executor,
                    portfolio=Portfolio(cash), store=store, clock=LiveClock(),
                    settings=EngineSettings(durable=True), markets=rules)
    return engine, executor


def signal(ts: int, direction: Direction, size: float = 5.0) -> Signal:
    return Signal("t", SYM, "1h", ts, direction, 90.0, size_pct=size if direction is Direction.LONG else 0.0)


def test_insufficient_funds_becomes_a_stored_denial(data_dir: Path, tmp_path: Path) -> None:
    async def body(sim: SimExchange, client: Any, store: Store) -> None:
        engine, _ = await engine_for(client, store, cash=10_000_000.0)  # believes it is rich
        denials: list[OrderDenied] = []
        engine.subscribe(lambda f: denials.append(f) if isinstance(f, OrderDenied) else None)
        await engine.on_signal(signal(1, Direction.LONG), 10_000.0)
        assert [d.check for d in denials] == ["exchange_insufficient_funds"]
        rows = await store.fetch("risk_decisions", "approved = 0")
        assert [r["check_name"] for r in rows] == ["exchange_insufficient_funds"]
        (order,) = await store.load_exchange_orders()
        assert order["state"] == "rejected" and "insufficient" in order["error"]
        assert not engine.ledger.entry_pending(SYM)  # released: a later signal may enter

    with_exchange(data_dir, tmp_path, body)


def test_restart_adopts_an_order_the_crash_left_unanswered(data_dir: Path, tmp_path: Path) -> None:
    async def body(sim: SimExchange, client: Any, store: Store) -> None:
        executor = ExchangeExecutor(client, store, LiveClock())
        await executor.start([SYM])
        intent = buy("crash", 0.02)
        cid = client_order_id(intent.signal_id, SYM, "entry")
        from bot.execution.exchange import record_row
        from bot.core.orders import OrderRecord

        await store.save_exchange_order(record_row(OrderRecord.from_intent(intent, cid, 1)))
        await client.create_order(SYM, "market", "buy", 0.02, None, {"newClientOrderId": cid})
        built = await sandbox().exchange_engine(client, store, LiveClock(), [], [SYM], limits=LIMITS,
                                                engine=EngineSettings(), retry=RetryPolicy(sleep=NoSleep()))
        engine = built.engine
        assert built.report.clean and engine.state is TradingState.ACTIVE
        pos = engine.portfolio.position(SYM)
        assert pos.amount == pytest.approx(0.02 * 0.999) and pos.stop_price is not None
        assert len(await store.fetch("fills")) == 1 and len(sim.matcher.orders) == 1
        # a foreign resting order cannot be explained: HALTED, and it stays halted after a restart
        await client.create_order(SYM, "limit", "buy", 0.01, 1_000.0, {"newClientOrderId": "manual1"})
        again = await sandbox().exchange_engine(client, store, LiveClock(), [], [SYM], limits=LIMITS,
                                                engine=EngineSettings(), retry=RetryPolicy(sleep=NoSleep()))
        assert again.engine.state is TradingState.HALTED
        assert "not ours" in again.engine.state_reason
        assert (await store.load_trading_state() or ("", ""))[0] == "halted"

    with_exchange(data_dir, tmp_path, body)
