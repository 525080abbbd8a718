"""The ports are complete: every executor, fact sink and clock implements its whole Protocol,
and cancel-all keeps (or not) protective orders the same way on every executor."""

from __future__ import annotations

import asyncio
from pathlib import Path

import ccxt.async_support as ccxt

from bot.core.clock import LiveClock, SimClock
from bot.evaluation.backtest import MemoryStore
from bot.core.events import OrderBook, OrderIntent, OrderType, Side
from bot.sim.testing import ExchangeClock
from bot.execution.exchange import ExchangeExecutor
from bot.core.orders import OrderClosed, OrderState
from bot.execution.paper_book import PaperBookExecutor
from bot.execution.simulated import SimulatedExecutor
from bot.execution.stop_orders import ExchangeStops
from bot.core.ports import Clock, ExecutionPort, FactSink, ProtectionPort
from bot.store.store import Store

BTC, ETH = "BTC/USDT", "ETH/USDT"


def intent(symbol: str, leg: str, side: Side, price: float, order_type: OrderType = OrderType.MARKET) -> OrderIntent:
    return OrderIntent(f"s:{symbol}:{leg}", "s", symbol, side, 1.0, order_type, price,
                       reduce_only=side is Side.SELL, leg=leg)


def test_every_executor_is_a_whole_execution_port_and_declares_its_protection(tmp_path: Path) -> None:
    async def go() -> None:
        store = await Store.open(tmp_path / "p.sqlite", "p")
        client = ccxt.binance()
        try:
            plain = ExchangeExecutor(client, store, LiveClock())
            stops = ExchangeExecutor(client, store, LiveClock(), exchange_stops=True)
            for executor in (SimulatedExecutor(), PaperBookExecutor(), plain, stops):
                assert isinstance(executor, ExecutionPort), type(executor).__name__
            assert SimulatedExecutor().protection is None and PaperBookExecutor().protection is None
            assert plain.protection is None
            assert isinstance(stops.protection, ExchangeStops) and isinstance(stops.protection, ProtectionPort)
            assert stops.protection.protected_symbols() == set()
            assert isinstance(store, FactSink) and isinstance(MemoryStore(), FactSink)
        finally:
            await client.close()
            await store.close()

    asyncio.run(go())


def test_every_clock_declares_advance_to_and_only_a_simulated_one_moves() -> None:
    sim, live = SimClock(5), LiveClock()
    for clock in (sim, live, object.__new__(ExchangeClock)):  # the loopback exchange's, unstarted
        assert isinstance(clock, Clock), type(clock).__name__
    sim.advance_to(100)
    sim.advance_to(50)  # never backwards
    before = live.now_ms()
    live.advance_to(before + 10**9)  # wall time does not follow the market
    assert sim.now_ms() == 100 and live.now_ms() < before + 10**9


def _closed(facts: list) -> list[str]:
    return sorted(f.intent_id for f in facts if isinstance(f, OrderClosed) and f.state is OrderState.CANCELED)


def test_simulated_cancel_all_keeps_what_it_is_told_to_keep_on_the_symbols_named() -> None:
    async def go() -> tuple[list[str], list[str], list[str]]:
        ex = SimulatedExecutor()
        for symbol in (BTC, ETH):
            await ex.submit(intent(symbol, "entry", Side.BUY, 100.0), 0)
            await ex.submit(intent(symbol, "exit", Side.SELL, 100.0), 0)
        _, halt = await ex.cancel_all(1, [BTC], keep_protective=True, entries_only=True, reason="halt")
        _, rest = await ex.cancel_all(2, [BTC, ETH], keep_protective=False)
        n, nothing = await ex.cancel_all(3, [BTC, ETH], keep_protective=False)
        assert n == 0 and nothing == []
        return _closed(halt), _closed(rest), [o.intent_id for o in ex.pending(BTC) + ex.pending(ETH)]

    halt, rest, left = asyncio.run(go())
    assert halt == ["s:BTC/USDT:entry"]  # a halt cancels entries only, on what it names
    assert rest == ["s:BTC/USDT:exit", "s:ETH/USDT:entry", "s:ETH/USDT:exit"] and left == []


def test_paper_book_cancel_all_keeps_resting_stops_at_a_shutdown_that_leaves_them() -> None:
    async def go() -> tuple[list[str], list[str]]:
        ex = PaperBookExecutor()
        await ex.on_market(OrderBook("binance", BTC, 0, ((99.0, 1.0),), ((101.0, 1.0),)))
        await ex.submit(intent(BTC, "entry", Side.BUY, 90.0, OrderType.LIMIT), 0)  # rests below the book
        await ex.submit(intent(BTC, "stop", Side.SELL, 120.0, OrderType.LIMIT), 0)  # rests above it
        await ex.submit(intent(BTC, "exit", Side.SELL, 130.0, OrderType.LIMIT), 0)
        n, facts = await ex.cancel_all(1, [BTC], keep_protective=True, reason="daemon shutdown")
        assert n == 2 and all(f.reason == "daemon shutdown" for f in facts)
        return _closed(facts), sorted(ex.open)

    closed, left = asyncio.run(go())
    assert closed == ["s:BTC/USDT:entry", "s:BTC/USDT:exit"] and left == ["s:BTC/USDT:stop"]


def test_every_feed_is_a_whole_feed_port() -> None:
    """The daemon reads each stream's reconnects through the port, never by probing the feed."""
    from bot.core.feed_port import Feed
    from bot.feeds.live import LiveFeed
    from bot.feeds.live_settings import LiveFeedSettings
    from bot.feeds.replay import ReplayFeed

    replay = ReplayFeed([])
    client = ccxt.binance()
    try:
        live = LiveFeed(client, LiveFeedSettings(exchange="binance", symbols=(BTC,), timeframes=("1h",)),
                        LiveClock())
        live.stats["ohlcv:BTC/USDT:1h"].reconnects = 2
        for feed in (replay, live):
            assert isinstance(feed, Feed), type(feed).__name__
        assert replay.reconnects_by_stream() == {} and live.reconnects_by_stream() == {"ohlcv:BTC/USDT:1h": 2}
    finally:
        asyncio.run(client.close())
