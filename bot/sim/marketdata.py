"""Public market data from the replayed candles: one price path per symbol, the klines of
every interval, the public trade tape, the average price and rolling tickers.

The price path is the finest candle file's: within a bar the price moves linearly from
open to close (at the close the bar takes the file's high and low). The public trade tape
draws ``trades_per_bar`` trades along that path, evenly spaced in time, each ``volume /
trades_per_bar``; so ``trades``, ``aggTrades``, the ``@trade``/``@aggTrade`` streams, the
kline trade counts and the ticker statistics all tell the same story.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bot.sim.recordings import CandleSeries, market_id
from bot.sim.errors import OrderError
from bot.sim.filters import filters_for, fmt
from bot.sim.klines import IntervalError, KlineSource, base_bar, pick_source
from bot.sim.market import current_price


@dataclass(frozen=True, slots=True)
class TapeTrade:
    id: int
    price: float
    qty: float
    time: int
    buyer_maker: bool

    def as_trade(self) -> dict:
        return {"id": self.id, "price": fmt(self.price), "qty": fmt(self.qty),
                "quoteQty": fmt(self.price * self.qty), "time": self.time,
                "isBuyerMaker": self.buyer_maker, "isBestMatch": True}

    def as_agg_trade(self) -> dict:
        return {"a": self.id, "p": fmt(self.price), "q": fmt(self.qty), "f": self.id,
                "l": self.id, "T": self.time, "m": self.buyer_maker, "M": True}

    def stream(self, mid: str, kind: str, event_ms: int) -> dict:
        if kind == "aggTrade":
            return {"e": "aggTrade", "E": event_ms, "s": mid} | self.as_agg_trade()
        return {"e": "trade", "E": event_ms, "s": mid, "t": self.id, "p": fmt(self.price),
                "q": fmt(self.qty), "T": self.time, "m": self.buyer_maker, "M": True}


class MarketData:
    def __init__(self, series: dict[tuple[str, str], CandleSeries], now_ms: Callable[[], int],
                 per_bar: int) -> None:
        self.files: dict[str, dict[str, CandleSeries]] = {}
        for (symbol, tf), s in series.items():
            self.files.setdefault(market_id(symbol), {})[tf] = s
        self.now_ms = now_ms
        self.per_bar = max(1, per_bar)
        self._sources: dict[tuple[str, str], KlineSource] = {}

    def base(self, mid: str) -> CandleSeries | None:
        files = self.files.get(mid)
        return min(files.values(), key=lambda s: s.tf_ms) if files else None

    def source(self, mid: str, interval: str) -> KlineSource:
        key = (mid, interval)
        if key not in self._sources:
            files = self.files.get(mid)
            if not files:
                raise OrderError(-1120, "Invalid interval: no candles for this symbol.")
            try:
                series = pick_source(files, interval)
            except IntervalError as exc:
                raise OrderError(-1120, str(exc)) from None
            self._sources[key] = KlineSource(series, interval, self.per_bar)
        return self._sources[key]

    def klines(self, mid: str, interval: str, start: int | None, end: int | None,
               limit: int) -> list[list]:
        return self.source(mid, interval).rest_rows(self.now_ms(), start, end, limit)

    # -- the price path -----------------------------------------------------------------

    def path_price(self, mid: str, at_ms: int) -> float | None:
        """The price at ``at_ms`` on the base bars' path (``None`` before the data)."""
        base = self.base(mid)
        return None if base is None else current_price(base, at_ms)

    def round_tick(self, mid: str, price: float) -> float:
        tick = float(filters_for(mid).tick)
        return round(round(price / tick) * tick, 8)

    def avg_price(self, mid: str, mins: int = 5) -> float:
        now = self.now_ms()
        points = [self.path_price(mid, now - k * 30_000) for k in range(mins * 2 + 1)]
        known = [p for p in points if p is not None]
        return self.round_tick(mid, sum(known) / len(known)) if known else 0.0

    # -- the trade tape -----------------------------------------------------------------

    def _bar_trades(self, base: CandleSeries, mid: str, i: int, now_ms: int) -> list[TapeTrade]:
        o, h, lo, c, v = (float(x) for x in base.ohlcv[i])
        if v <= 0:
            return []
        n, ts, tf = self.per_bar, int(base.ts[i]), base.tf_ms
        share = 0.5 if h <= lo else (c - lo) / (h - lo)
        out = []
        for j in range(n):
            frac = (2 * j + 1) / (2 * n)
            at = ts + int(frac * tf)
            if at > now_ms:
                break
            taker_buy = math.floor((j + 1) * share) > math.floor(j * share)
            out.append(TapeTrade(i * n + j + 1, self.round_tick(mid, o + (c - o) * frac), v / n,
                                 at, not taker_buy))
        return out

    def trades(self, mid: str, limit: int, from_id: int | None = None, start: int | None = None,
               end: int | None = None) -> list[TapeTrade]:
        """Tape trades up to now: from ``from_id``, or in ``[start, end]``, else the latest."""
        base = self.base(mid)
        if base is None:
            return []
        now = self.now_ms() if end is None else min(self.now_ms(), end)
        if from_id is None and start is None:  # the latest ``limit``
            out: list[TapeTrade] = []
            i = int(np.searchsorted(base.ts, now, side="right")) - 1
            while i >= 0 and len(out) < limit:
                out = self._bar_trades(base, mid, i, now) + out
                i -= 1
            return out[-limit:]
        if from_id is not None:
            i = max(0, (from_id - 1) // self.per_bar)
        else:
            i = max(0, int(np.searchsorted(base.ts, start, side="right")) - 1)
        out = []
        while i < len(base.ts) and len(out) < limit and int(base.ts[i]) <= now:
            out += [t for t in self._bar_trades(base, mid, i, now)
                    if (from_id is None or t.id >= from_id) and (start is None or t.time >= start)]
            i += 1
        return out[:limit]

    # -- tickers ------------------------------------------------------------------------

    def window_stats(self, mid: str, window_ms: int) -> dict:
        """Open/high/low/last, volumes and trade count over ``[now - window, now]``."""
        now = self.now_ms()
        last = self.path_price(mid, now) or 0.0
        start = now - window_ms
        open_ = self.path_price(mid, start) or last
        high, low, vol, quote, count = max(open_, last), min(open_, last), 0.0, 0.0, 0
        base = self.base(mid)
        if base is not None:
            lo = int(np.searchsorted(base.ts, start, side="right"))
            hi = int(np.searchsorted(base.ts, now, side="right"))
            for i in range(max(0, lo - 1), hi):
                ts = int(base.ts[i])
                done = base_bar(base.ohlcv[i], min(1.0, (now - ts) / base.tf_ms), self.per_bar)
                before = base_bar(base.ohlcv[i], (start - ts) / base.tf_ms, self.per_bar) \
                    if ts < start else None
                vol += done.volume - (before.volume if before else 0.0)
                quote += done.quote_volume - (before.quote_volume if before else 0.0)
                count += done.trades - (before.trades if before else 0)
                if before is None:
                    high, low = max(high, done.high), min(low, done.low)
        tape = self.trades(mid, 1)
        first_id = tape[-1].id - count + 1 if tape and count else -1
        r = lambda x: self.round_tick(mid, x)  # noqa: E731
        return {
            "priceChange": fmt(r(last) - r(open_)),
            "priceChangePercent": f"{(last / open_ - 1) * 100 if open_ else 0.0:.3f}",
            "weightedAvgPrice": fmt(r(quote / vol) if vol > 0 else r(last)),
            "openPrice": fmt(r(open_)), "highPrice": fmt(r(high)), "lowPrice": fmt(r(low)),
            "lastPrice": fmt(r(last)), "volume": fmt(vol), "quoteVolume": fmt(quote),
            "openTime": start, "closeTime": now, "firstId": first_id,
            "lastId": tape[-1].id if tape and count else -1, "count": count,
            "lastQty": fmt(tape[-1].qty) if tape else "0.00000000",
            "prevClosePrice": fmt(r(self.path_price(mid, start - 1) or open_)),
        }
