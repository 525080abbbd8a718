"""Market state of the loopback exchange: simulated time, the price path and the L2 book."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable

import numpy as np

from bot.sim.recordings import CandleSeries

Level = tuple[float, float]


class SimTime:
    """Simulated exchange time: ``start_ms + real_elapsed_ms * speed`` (monotonic source)."""

    def __init__(self, start_ms: int, speed: float, monotonic: Callable[[], float]) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start_ms = start_ms
        self.speed = speed
        self._mono = monotonic
        self._t0 = monotonic()

    def now_ms(self) -> int:
        return self.start_ms + int((self._mono() - self._t0) * 1000.0 * self.speed)

    def real_delay_s(self, sim_ms: int) -> float:
        """Real seconds from now until simulated instant ``sim_ms`` (<= 0 if past)."""
        return (sim_ms - self.now_ms()) / 1000.0 / self.speed

    async def sleep_until(self, sim_ms: int) -> None:
        delay = self.real_delay_s(sim_ms)
        if delay > 0:
            await asyncio.sleep(delay)


def current_price(series: CandleSeries, now_ms: int) -> float | None:
    """The price at ``now_ms`` on the bars' path: linear from open to close within a bar."""
    i = int(np.searchsorted(series.ts, now_ms, side="right")) - 1
    if i < 0:
        return None
    o, c = float(series.ohlcv[i, 0]), float(series.ohlcv[i, 3])
    return o + (c - o) * min(1.0, (now_ms - int(series.ts[i])) / series.tf_ms)


def price_range(series: CandleSeries, since_ms: int, now_ms: int) -> tuple[float, float] | None:
    """Lowest and highest price the simulated path (open -> close per bar) took in the window."""
    end = current_price(series, now_ms)
    if end is None:
        return None
    start = current_price(series, since_ms)
    points = [end] if start is None else [start, end]
    lo = int(np.searchsorted(series.ts, since_ms, side="right"))
    hi = int(np.searchsorted(series.ts, now_ms, side="right"))
    if hi > lo:  # bars began in between: their opens, and the closes of bars that ended
        points += series.ohlcv[lo:hi, 0].tolist() + series.ohlcv[max(0, lo - 1):hi - 1, 3].tolist()
    return min(points), max(points)


class SimBook:
    """An L2 book kept as price -> quantity maps, updated by Binance diff messages."""

    __slots__ = ("bids", "asks", "last_update_id")

    def __init__(self) -> None:
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.last_update_id = 0

    def load_snapshot(self, snap: dict) -> None:
        self.bids = {float(p): float(q) for p, q in snap["bids"] if float(q) > 0}
        self.asks = {float(p): float(q) for p, q in snap["asks"] if float(q) > 0}
        self.last_update_id = int(snap["lastUpdateId"])

    def apply_diff(self, diff: dict) -> bool:
        """Apply a ``depthUpdate`` if it is newer than the book; returns whether applied."""
        if int(diff["u"]) <= self.last_update_id:
            return False
        for side, levels in ((self.bids, diff["b"]), (self.asks, diff["a"])):
            for p, q in levels:
                price, qty = float(p), float(q)
                if qty == 0.0:
                    side.pop(price, None)
                else:
                    side[price] = qty
        self.last_update_id = int(diff["u"])
        return True

    def top(self, limit: int) -> tuple[list[Level], list[Level]]:
        bids = heapq.nlargest(limit, self.bids.items())
        asks = heapq.nsmallest(limit, self.asks.items())
        return bids, asks

    def best(self) -> tuple[Level | None, Level | None]:
        bid = max(self.bids.items()) if self.bids else None
        ask = min(self.asks.items()) if self.asks else None
        return bid, ask


def synthetic_levels(
    price: float, spread_bps: float, levels: int, qty: float
) -> tuple[list[Level], list[Level]]:
    """A symmetric ladder around ``price`` for markets without a recording."""
    half = price * spread_bps / 20_000.0
    step = price * 1e-4
    bids = [(price - half - i * step, qty) for i in range(levels)]
    asks = [(price + half + i * step, qty) for i in range(levels)]
    return bids, asks
