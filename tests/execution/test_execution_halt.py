"""``neuralbot halt --flatten`` against the loopback exchange (served from a thread)."""

from __future__ import annotations

import argparse
import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.core.clock import LiveClock
from bot.cli.execution import halt_handler
from bot.core.events import OrderIntent, OrderType, Side
from bot.sim import SimExchange, SimSettings, make_ccxt_binance
from bot.execution.exchange import ExchangeExecutor
from bot.store.store import Store

SYM = "BTC/USDT"


@pytest.fixture
def sim(data_dir: Path) -> Iterator[SimExchange]:
    exchange = SimExchange(SimSettings(data_dir=data_dir, symbols=(SYM,), timeframes=("1h",),
                                       book_replay=False, speed=1.0, start_ms=1_600_000_000_000))
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(exchange.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(30)
    yield exchange
    asyncio.run_coroutine_threadsafe(exchange.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)


def test_halt_cancels_entries_flattens_and_persists(sim: SimExchange, write_config, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURALBOT_API_KEY", "sim-key")
    monkeypatch.setenv("NEURALBOT_API_SECRET", "sim-secret")
    # the strategies trade BTC/USDT; [backtest].symbols names another market, which halt must not use
    config = write_config(f'mode = "sandbox"\n\n[exchange]\nhttp_url = "{sim.http_url}"\n\n'
                          '[backtest]\nsymbols = ["ETH/USDT"]\n\n[[strategies]]\nname = "ma"\n'
                          'kind = "ma_crossover"\nsymbols = ["BTC/USDT"]\nparams = { fast = 10, slow = 30 }\n')
    db = tmp_path / "bot.sqlite"

    async def trade() -> None:
        client = make_ccxt_binance(sim.http_url, api_key="sim-key", secret="sim-secret", pro=False)
        client.options["adjustForTimeDifference"] = False
        store = await Store.open(db, "default")
        try:
            ex = ExchangeExecutor(client, store, LiveClock())
            await ex.start([SYM])
            for fact in await ex.submit(OrderIntent("a:entry", "a", SYM, Side.BUY, 0.05, leg="entry"), 1):
                if not type(fact).__name__ == "OrderClosed":
                    store.record(fact)  # type: ignore[arg-type]
            await store.flush()
            await ex.submit(OrderIntent("b:entry", "b", SYM, Side.BUY, 0.05, OrderType.LIMIT,
                                        price=1_000.0, leg="entry"), 2)
        finally:
            await store.close()
            await client.close()

    asyncio.run(trade())
    assert len(sim.matcher.open_orders(None)) == 1
    assert halt_handler(argparse.Namespace(config=str(config), flatten=True, why="test", who="ops")) == 0
    assert sim.matcher.open_orders(None) == []
    btc = sum(float(b["free"]) + float(b["locked"]) for b in sim.matcher.balances() if b["asset"] == "BTC")
    assert btc < 1e-6

    async def state() -> tuple[tuple[str, str] | None, list[dict]]:
        store = await Store.open(db, "default")
        try:
            return await store.load_trading_state(), await store.operator_actions()
        finally:
            await store.close()

    stored, actions = asyncio.run(state())
    assert stored == ("halted", "operator halt by ops: test")
    assert [(a["who"], a["action"], a["why"]) for a in actions] == [("ops", "halt", "test")]
