"""Multi-timeframe context inside the model input: 4H / 1D / 1W bars from the hourly stream.

:class:`HigherTimeframe` is a feature indicator (``kind = "htf"`` in a feature spec)
that feeds every accepted hourly candle to the exact aggregator the confluence
strategy uses (:class:`bot.core.aggregate.CandleAggregator`: epoch / Monday aligned
buckets, incomplete buckets dropped) and describes the *completed* higher-timeframe
bars: an aggregate is emitted the moment its last hourly bar closes, so a row never
sees a bar that has not closed (no look-ahead), and batch == stream because both run
this same indicator in :class:`strategies.features.compute.FeatureEngine`.

Outputs per timeframe (NaN until ``bars + 1`` aggregated bars exist):

* ``ret``: log return of the last completed higher-timeframe bar;
* ``trend``: last aggregated close / SMA of the last ``bars`` aggregated closes - 1;
* ``pos``: where the current hourly close sits in the last completed bar's range
  (0 = its low, 1 = its high; may leave [0, 1]).

The source stream must be hourly (``source_minutes``, default 60).
"""

from __future__ import annotations

import math

from bot.core.aggregate import CandleAggregator
from bot.core.events import Candle
from strategies.features.indicators import NAN, Ctx, Indicator, Ring

TIMEFRAMES = {240: "4h", 1440: "1d", 10080: "1w"}


class HigherTimeframe(Indicator):
    outputs = ("ret", "trend", "pos")

    def __init__(self, minutes: int, bars: int = 10, source_minutes: int = 60) -> None:
        if int(minutes) not in TIMEFRAMES:
            raise ValueError(f"htf minutes must be one of {sorted(TIMEFRAMES)}, got {minutes}")
        source = {60: "1h"}.get(int(source_minutes))
        if source is None:
            raise ValueError("htf features aggregate an hourly stream (source_minutes = 60)")
        self.agg = CandleAggregator("_", TIMEFRAMES[int(minutes)], source)
        self.bars = int(bars)
        self.closes = Ring(self.bars + 1)
        self.last: Candle | None = None

    def step(self, ctx: Ctx) -> tuple[float, ...]:
        for bar in self.agg.push(Candle("binance", "_", self.agg.source, ctx.ts, ctx.open, ctx.high,
                                             ctx.low, ctx.close, ctx.volume)):
            self.closes.push(bar.close)
            self.last = bar
        if self.closes.count <= self.bars or self.last is None:
            return (NAN, NAN, NAN)
        ret = math.log(self.closes.ago(0) / self.closes.ago(1))
        sma = sum(self.closes.ago(i) for i in range(self.bars)) / self.bars
        span = self.last.high - self.last.low
        pos = (ctx.close - self.last.low) / span if span > 0 else 0.5
        return (ret, self.closes.ago(0) / sma - 1.0, pos)
