"""Klines of every Binance interval from the replayed candles, with their trade statistics.

An interval with its own candle file is served from it; any other is aggregated from the
finest file whose bars tile it (4h from 1h, 1w from 1d...). An interval finer than the
data (1m from hourly candles) cannot be served and is refused (-1120). Open bars are
partly formed along the base bar's price path (open -> close, linear), so every interval
shows one price at one instant.

Trade statistics follow the public trade tape (``bot.sim.tape``): ``n`` trades
per bar, a taker-buy share given by where the close sits in the bar's range.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from bot.sim.recordings import CandleSeries
from bot.sim.filters import fmt

INTERVAL_MS = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000,
    "30m": 1_800_000, "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000,
    "8h": 28_800_000, "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000,
    "1w": 604_800_000, "1M": 2_419_200_000,  # 1M: its shortest month, for ordering only
}
_DAY, _WEEK, _MONDAY = 86_400_000, 604_800_000, 4 * 86_400_000


class IntervalError(ValueError):
    """An interval Binance does not know, or one finer than the replayed data."""


@dataclass(frozen=True, slots=True)
class Bar:
    open: float
    high: float
    low: float
    close: float
    volume: float
    quote_volume: float
    trades: int
    taker_base: float
    taker_quote: float
    closed: bool


def bucket_starts(ts: np.ndarray, interval: str) -> np.ndarray:
    if interval == "1M":
        return ts.astype("datetime64[ms]").astype("datetime64[M]").astype("datetime64[ms]") \
            .astype(np.int64)
    if interval == "1w":
        return ts - (ts - _MONDAY) % _WEEK
    step = INTERVAL_MS[interval]
    return ts - ts % step


def bucket_ends(starts: np.ndarray, interval: str) -> np.ndarray:
    if interval == "1M":
        months = starts.astype("datetime64[ms]").astype("datetime64[M]") + 1
        return months.astype("datetime64[ms]").astype(np.int64)
    return starts + INTERVAL_MS[interval]


def base_bar(row: np.ndarray, frac: float, per_bar: int) -> Bar:
    """Bar ``row`` ``frac`` of the way through its time (1.0: closed, the file's values)."""
    o, h, lo, c, v = (float(x) for x in row)
    share = 0.5 if h <= lo else (c - lo) / (h - lo)  # taker-buy share of the volume
    if frac < 1.0:
        c = o + (c - o) * max(0.0, frac)
        h, lo, v = max(o, c), min(o, c), v * max(0.0, frac)
    n = 0 if v <= 0 else min(per_bar, int(max(0.0, frac) * per_bar + 0.5))
    avg = (o + c) / 2
    return Bar(o, h, lo, c, v, v * avg, n, v * share, v * share * avg, frac >= 1.0)


class KlineSource:
    """One symbol's bars of one interval: a file's rows, or buckets of a finer file's rows."""

    def __init__(self, base: CandleSeries, interval: str, per_bar: int) -> None:
        self.base = base
        self.interval = interval
        self.per_bar = per_bar
        if interval == base.timeframe:
            self.ts = base.ts
            self.ends = base.ts + base.tf_ms
            self._first = np.arange(len(base.ts) + 1)
        else:
            starts = bucket_starts(base.ts, interval)
            self.ts, first = np.unique(starts, return_index=True)
            self.ends = bucket_ends(self.ts, interval)
            self._first = np.append(first, len(base.ts))

    def index_at(self, ms: int) -> int:
        """Index of the bar open at ``ms`` (or the last before it); -1 before the data."""
        return int(np.searchsorted(self.ts, ms, side="right")) - 1

    def bar(self, i: int, now_ms: int) -> Bar:
        base, tf = self.base, self.base.tf_ms
        lo, hi = int(self._first[i]), int(self._first[i + 1])
        parts = []
        for j in range(lo, hi):
            ts = int(base.ts[j])
            if ts > now_ms:
                break
            parts.append(base_bar(base.ohlcv[j], min(1.0, (now_ms - ts) / tf), self.per_bar))
        if not parts:  # a bucket whose first base bar lies in the future: nothing traded yet
            first = float(base.ohlcv[lo, 0])
            return Bar(first, first, first, first, 0.0, 0.0, 0, 0.0, 0.0, False)
        if len(parts) == 1:
            return dataclasses.replace(parts[0], closed=now_ms >= int(self.ends[i]))
        return Bar(parts[0].open, max(p.high for p in parts), min(p.low for p in parts),
                   parts[-1].close, sum(p.volume for p in parts),
                   sum(p.quote_volume for p in parts), sum(p.trades for p in parts),
                   sum(p.taker_base for p in parts), sum(p.taker_quote for p in parts),
                   now_ms >= int(self.ends[i]))

    def rest_rows(self, now_ms: int, start: int | None, end: int | None, limit: int) -> list[list]:
        """Binance ``/api/v3/klines`` rows up to ``now_ms`` (the open bar partly formed)."""
        hi_ts = now_ms if end is None else min(now_ms, end)
        hi = int(np.searchsorted(self.ts, hi_ts, side="right"))
        if start is not None:
            lo = int(np.searchsorted(self.ts, start, side="left"))
        else:
            lo = max(0, hi - limit)
        hi = min(hi, lo + limit)
        rows = []
        for i in range(lo, hi):
            b = self.bar(i, now_ms)
            rows.append([int(self.ts[i]), fmt(b.open), fmt(b.high), fmt(b.low), fmt(b.close),
                         fmt(b.volume), int(self.ends[i]) - 1, fmt(b.quote_volume), b.trades,
                         fmt(b.taker_base), fmt(b.taker_quote), "0"])
        return rows

    def payload(self, mid: str, i: int, now_ms: int, event_ms: int) -> dict:
        """A ``<sym>@kline_<interval>`` push of bar ``i`` as it stands at ``now_ms``."""
        b = self.bar(i, now_ms)
        ts = int(self.ts[i])
        return {
            "e": "kline", "E": event_ms, "s": mid,
            "k": {
                "t": ts, "T": int(self.ends[i]) - 1, "s": mid, "i": self.interval, "f": -1,
                "L": -1, "o": fmt(b.open), "c": fmt(b.close), "h": fmt(b.high),
                "l": fmt(b.low), "v": fmt(b.volume), "n": b.trades, "x": b.closed,
                "q": fmt(b.quote_volume), "V": fmt(b.taker_base), "Q": fmt(b.taker_quote),
                "B": "0",
            },
        }


def pick_source(files: dict[str, CandleSeries], interval: str) -> CandleSeries:
    """The candle file to serve ``interval`` from: its own, else the finest that tiles it."""
    if interval not in INTERVAL_MS:
        raise IntervalError("Invalid interval.")
    if interval in files:
        return files[interval]
    want = INTERVAL_MS[interval]
    for tf in sorted(files, key=lambda t: files[t].tf_ms):
        step = files[tf].tf_ms
        tiles = want % step == 0 if interval not in ("1w", "1M") else _DAY % step == 0
        if step < want and tiles:
            return files[tf]
    finest = min(files, key=lambda t: files[t].tf_ms)
    raise IntervalError(f"Invalid interval: the loopback exchange replays {finest} candles for "
                        f"this symbol; {interval} cannot be built from them.")
