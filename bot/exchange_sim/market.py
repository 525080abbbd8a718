"""Market state of the loopback exchange: simulated time, klines and the order books."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable

import numpy as np

from bot.exchange_sim.data import CandleSeries

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


def fmt(x: float) -> str:
    return repr(float(x))


def partial_bar(row: np.ndarray, frac: float) -> tuple[float, float, float, float, float]:
    """A plausible in-progress bar ``frac`` of the way through the final ``row``."""
    o, h, lo, c, v = (float(x) for x in row)
    if frac >= 1.0:
        return o, h, lo, c, v
    close = o + (c - o) * frac
    return o, max(o, close), min(o, close), close, v * frac


def kline_payload(series: CandleSeries, mid: str, i: int, frac: float, event_ms: int) -> dict:
    tf = series.tf_ms
    ts = int(series.ts[i])
    o, h, lo, c, v = partial_bar(series.ohlcv[i], frac)
    return {
        "e": "kline", "E": event_ms, "s": mid,
        "k": {
            "t": ts, "T": ts + tf - 1, "s": mid, "i": series.timeframe, "f": -1, "L": -1,
            "o": fmt(o), "c": fmt(c), "h": fmt(h), "l": fmt(lo), "v": fmt(v), "n": 0,
            "x": frac >= 1.0, "q": fmt(v * c), "V": "0", "Q": "0", "B": "0",
        },
    }


def rest_klines(
    series: CandleSeries, now_ms: int, start: int | None, end: int | None, limit: int
) -> list[list]:
    """Binance ``/api/v3/klines`` rows up to ``now_ms`` (the open bar partially filled)."""
    tf = series.tf_ms
    lo = series.index_at_or_after(start) if start is not None else None
    hi_ts = now_ms if end is None else min(now_ms, end)
    hi = int(np.searchsorted(series.ts, hi_ts, side="right"))
    if lo is None:
        lo = max(0, hi - limit)
    hi = min(hi, lo + limit)
    rows: list[list] = []
    for i in range(lo, hi):
        ts = int(series.ts[i])
        frac = min(1.0, (now_ms - ts) / tf)
        o, h, low, c, v = partial_bar(series.ohlcv[i], frac)
        rows.append([ts, fmt(o), fmt(h), fmt(low), fmt(c), fmt(v), ts + tf - 1, fmt(v * c), 0,
                     "0", "0", "0"])
    return rows


def current_price(series: CandleSeries, now_ms: int) -> float | None:
    i = int(np.searchsorted(series.ts, now_ms, side="right")) - 1
    if i < 0:
        return None
    frac = min(1.0, (now_ms - int(series.ts[i])) / series.tf_ms)
    return partial_bar(series.ohlcv[i], frac)[3]


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
