"""Protection alone: bars and prices against stops and targets give exit requests; trailing
stops only ratchet up; the exchange-side mirror follows what changed."""

from __future__ import annotations

import asyncio

from bot.core.events import Candle, PositionChanged
from bot.engine.protection import ExitRequest, Protection
from risk.portfolio import Portfolio, Position

SYM = "BTC/USDT"
HOUR = 3_600_000


def bar(ts: int, o: float, h: float, low: float, c: float) -> Candle:
    return Candle("binance", SYM, "1h", ts, o, h, low, c, 1.0)


def held(stop: float | None = 94.0, target: float | None = 112.0, trail: float | None = None) -> Portfolio:
    portfolio = Portfolio(0.0)
    portfolio.restore(Position(SYM, 1.5, 100.0, stop, target, trail, 0.0, 0))
    return portfolio


def test_a_bar_through_the_stop_asks_for_a_stop_exit_at_the_stop() -> None:
    p = Protection(held(), None)
    assert p.judge_bar(bar(HOUR, 99.0, 101.0, 93.0, 100.0)) == ExitRequest(SYM, 1.5, "stop", 94.0, HOUR, f"{HOUR}")


def test_a_gap_below_the_stop_exits_at_the_open_and_the_stop_wins_a_wide_bar() -> None:
    p = Protection(held(), None)
    gap = p.judge_bar(bar(HOUR, 90.0, 91.0, 89.0, 90.0))
    assert gap is not None and (gap.leg, gap.price) == ("stop", 90.0)
    both = p.judge_bar(bar(2 * HOUR, 100.0, 113.0, 93.0, 100.0))  # touched both: the stop is assumed first
    assert both is not None and both.leg == "stop"


def test_a_target_hit_asks_for_a_take_profit_and_a_quiet_bar_for_nothing() -> None:
    p = Protection(held(), None)
    hit = p.judge_bar(bar(HOUR, 110.0, 113.0, 109.0, 112.5))
    assert hit is not None and (hit.leg, hit.price) == ("take_profit", 112.0)
    assert p.judge_bar(bar(2 * HOUR, 100.0, 105.0, 95.0, 101.0)) is None
    assert p.judge_price(SYM, 93.5, 5) == ExitRequest(SYM, 1.5, "stop", 93.5, 5, "5")
    assert p.judge_price(SYM, 100.0, 6) is None


def test_no_position_asks_for_nothing() -> None:
    p = Protection(Portfolio(1_000.0), None)
    assert p.judge_bar(bar(HOUR, 99.0, 101.0, 1.0, 100.0)) is None
    assert p.trail(SYM, 1_000.0, HOUR) is None


def test_the_trailing_stop_ratchets_up_only_and_marks_the_mirror_stale() -> None:
    portfolio = held(stop=90.0, trail=5.0)
    p = Protection(portfolio, None)
    changed = p.trail(SYM, 110.0, HOUR)
    assert isinstance(changed, PositionChanged) and changed.stop_price == 110.0 * 0.95 and p.stale
    assert p.trail(SYM, 105.0, 2 * HOUR) is None  # a lower high never lowers it
    assert portfolio.position(SYM).stop_price == 110.0 * 0.95


class RecordingPort:
    """An exchange-side stop book kept in memory: what the mirror asked of it."""

    def __init__(self, live: set[str]) -> None:
        self.live = set(live)
        self.calls: list[tuple[str, str, float | None]] = []

    async def protect(self, symbol: str, amount: float, stop_price: float, origin: int) -> list:
        self.calls.append(("protect", symbol, stop_price))
        self.live.add(symbol)
        return []

    async def unprotect(self, symbol: str) -> list:
        self.calls.append(("unprotect", symbol, None))
        self.live.discard(symbol)
        return []

    def protected_symbols(self) -> set[str]:
        return set(self.live)


def test_the_mirror_arms_open_positions_and_cancels_stops_of_closed_ones() -> None:
    async def go() -> RecordingPort:
        port = RecordingPort(live={"ETH/USDT"})  # a stop left from a position since closed
        p = Protection(held(), port)
        p.rearm()
        with p.mirroring() as mine:
            assert mine
            with p.mirroring() as nested:
                assert not nested  # the facts of one round never start a second
            while (symbol := p.next_stale()) is not None:
                await p.mirror(symbol)
        assert not p.stale
        return port

    port = asyncio.run(go())
    assert sorted(port.calls) == [("protect", SYM, 94.0), ("unprotect", "ETH/USDT", None)]
    assert port.live == {SYM}


def test_without_an_exchange_side_port_nothing_stays_stale() -> None:
    p = Protection(held(), None)
    p.touch(SYM)
    with p.mirroring() as mine:
        assert not mine
    assert not p.stale
