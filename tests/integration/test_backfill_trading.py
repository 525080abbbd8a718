"""After downtime the feed backfills the gap over REST: those bars warm state and move stops,
but never open a position (a backfilled bar may trade only within the configured grace)."""

from __future__ import annotations

from pathlib import Path

from bot.engine.engine import Engine
from bot.engine.settings import EngineSettings
from bot.core.events import Candle
from bot.sim import FaultSettings, SimExchange, SimSettings, make_ccxt_binance
from bot.sim.testing import ExchangeClock
from bot.execution.simulated import SimulatedExecutor
from bot.feeds.live import LiveFeed
from bot.feeds.live_settings import LiveFeedSettings
from bot.store.store import Store
from risk.gate import RiskGate, RiskLimits
from risk.portfolio import Portfolio, Position
from risk.stops import StopRules
from strategies.baselines import BuyAndHold

START = 1_577_836_800_000  # 2020-01-01
HOUR = 3_600_000
DOWN = 30  # hours the daemon was away
LIVE = 4  # live bars to watch after the gap


async def run_after_downtime(data_dir: Path, tmp_path: Path, position: Position | None,
                             grace_bars: float = 0.25) -> tuple[list[Candle], Engine, list[dict]]:
    restart = START + DOWN * HOUR
    sim = SimSettings(data_dir=data_dir, speed=HOUR / 150, start_ms=restart, end_ms=restart + (LIVE + 2) * HOUR,
                      symbols=("BTC/USDT",), timeframes=("1h",), book_replay=False, faults=FaultSettings())
    async with SimExchange(sim) as ex:
        clock = ExchangeClock(ex)
        store = await Store.open(tmp_path / "bot.sqlite", "p")
        portfolio = Portfolio(10_000.0)
        engine = Engine(strategies=[BuyAndHold("hold", ("BTC/USDT",), "1h", size_pct=5.0)],
                        gate=RiskGate(RiskLimits(min_strength=0.0, max_orders_per_minute=None)),
                        executor=SimulatedExecutor(cash=lambda: portfolio.cash), portfolio=portfolio,
                        store=store, clock=clock, settings=EngineSettings(stops=StopRules(6.0, None, 2.0)))
        if position is not None:
            engine.restore([position])
        feed = LiveFeed(make_ccxt_binance(ex.http_url, ex.ws_url), LiveFeedSettings(
            since_ms=START, kline_interval_s=0.5, max_clock_skew_ms=None, seed=1,
            backfill_grace_bars=grace_bars), clock)
        seen: list[Candle] = []
        try:
            async for event in feed:
                assert isinstance(event, Candle)
                seen.append(event)
                await engine.on_event(event)
                if event.ts >= restart + LIVE * HOUR:
                    break
        finally:
            await feed.close()
            await store.flush()
        orders = await store.fetch("orders")
        await store.close()
    return seen, engine, orders


def bar_ts(order: dict) -> int:
    """The open time of the bar an order was decided on (its intent id names the bar's close)."""
    return int(order["intent_id"].split(":")[-2]) - HOUR


async def test_backfilled_bars_never_open_a_position(data_dir: Path, tmp_path: Path) -> None:
    seen, engine, orders = await run_after_downtime(data_dir, tmp_path, None)
    backfilled = [c for c in seen if c.backfilled]
    assert len(backfilled) >= DOWN - 1  # the gap came over REST
    assert orders, "the first live bar should have entered"
    first_live = min(c.ts for c in seen if not c.backfilled)
    buys = [bar_ts(o) for o in orders if o["side"] == "buy"]
    assert buys == [first_live], (buys, first_live)  # the first live bar enters; no bar of the gap did


async def test_backfilled_bars_move_the_stops_of_a_held_position(data_dir: Path, tmp_path: Path) -> None:
    held = Position("BTC/USDT", 0.01, 7_000.0, 6_500.0, None, 2.0, 0.0, START - HOUR)
    seen, engine, orders = await run_after_downtime(data_dir, tmp_path, held)
    stop = engine.portfolio.position("BTC/USDT").stop_price
    peak = max(c.high for c in seen if c.backfilled)
    assert stop is not None and stop > 6_500.0  # trailed up on the gap's bars
    assert stop <= peak * 0.98 + 1e-6
    gap = {c.ts for c in seen if c.backfilled}
    assert not [o for o in orders if o["side"] == "buy" and bar_ts(o) in gap]  # nothing bought on the gap
