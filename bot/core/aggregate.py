"""Exact candle aggregation: hourly (or any finer) candles -> 4H / 1D / 1W candles.

A target bar covers the half-open interval ``[bucket, bucket + len)``; buckets are
aligned the way exchanges align them: to the Unix epoch for hours and days, and to
Monday 00:00 UTC for weeks (Binance's ``1w`` candles open on Mondays).

The aggregate of the source bars of one bucket is exact: open of the first, close
of the last, max of highs, min of lows, and the exactly-rounded sum
(:func:`math.fsum`) of volumes. A bucket is *complete* when every one of its
``len / source_len`` source bars arrived. Gaps (exchange outages) make a bucket
incomplete; ``partial`` decides what happens to it:

* ``partial=False`` (default): the incomplete bucket is dropped, with a logged
  reason: every emitted candle equals what the exchange would publish;
* ``partial=True``: it is emitted as soon as the next bucket starts (or at
  :meth:`CandleAggregator.flush`), built from the bars that did arrive.

A complete bucket is emitted the moment its last source bar closes, so an
aggregate never waits for the next bucket and never sees a bar after its close.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import structlog

from bot.core.events import Candle, timeframe_ms

log = structlog.get_logger(__name__)

WEEK_OFFSET_MS = 4 * 86_400_000  # 1970-01-01 was a Thursday; Mondays are epoch + 4 days (mod 7)


def bucket_start(ts: int, timeframe: str) -> int:
    """Open time of the ``timeframe`` bar that contains instant ``ts`` (ms)."""
    length = timeframe_ms(timeframe)
    offset = WEEK_OFFSET_MS if timeframe == "1w" else 0
    return ts - ((ts - offset) % length)


@dataclass(frozen=True, slots=True)
class _Partial:
    start: int
    open: float
    high: float
    low: float
    close: float
    volumes: tuple[float, ...]
    last_ts: int


class CandleAggregator:
    """Stream aggregator for one (symbol, source timeframe) -> one target timeframe."""

    def __init__(
        self,
        symbol: str,
        target: str,
        source: str = "1h",
        exchange: str = "binance",
        partial: bool = False,
    ) -> None:
        src, dst = timeframe_ms(source), timeframe_ms(target)
        if dst <= src or dst % src:
            raise ValueError(f"cannot aggregate {source} into {target}: not a multiple")
        self.symbol, self.target, self.source = symbol, target, source
        self.exchange = exchange
        self.partial = partial
        self.per_bucket = dst // src
        self._src_ms = src
        self._cur: _Partial | None = None
        self.dropped = 0  # incomplete buckets discarded (partial=False)
        self.emitted = 0

    def push(self, candle: Candle) -> list[Candle]:
        """Feed one closed source candle (time order); returns the target candles it completes."""
        if candle.symbol != self.symbol or candle.timeframe != self.source:
            raise ValueError(
                f"aggregator for {self.symbol} {self.source} got {candle.symbol} {candle.timeframe}"
            )
        if candle.ts % self._src_ms:
            raise ValueError(f"candle ts {candle.ts} is not aligned to {self.source}")
        cur = self._cur
        if cur is not None and candle.ts <= cur.last_ts:
            raise ValueError(f"out-of-order candle {candle.ts} after {cur.last_ts}")
        out: list[Candle] = []
        start = bucket_start(candle.ts, self.target)
        if cur is not None and cur.start != start:
            out.extend(self._close_current())
            cur = None
        if cur is None:
            cur = _Partial(start, candle.open, candle.high, candle.low, candle.close,
                           (candle.volume,), candle.ts)
        else:
            cur = _Partial(cur.start, cur.open, max(cur.high, candle.high), min(cur.low, candle.low),
                           candle.close, cur.volumes + (candle.volume,), candle.ts)
        self._cur = cur
        if candle.ts + self._src_ms == cur.start + timeframe_ms(self.target):
            # The bucket's last source bar closed: the bucket is closed too.
            out.extend(self._close_current())
        return out

    def flush(self) -> list[Candle]:
        """End of stream: emit (partial=True) or drop the open bucket."""
        return self._close_current() if self._cur is not None else []

    def _close_current(self) -> list[Candle]:
        cur, self._cur = self._cur, None
        assert cur is not None
        complete = len(cur.volumes) == self.per_bucket
        if not complete and not self.partial:
            self.dropped += 1
            log.info("aggregate_incomplete_dropped", symbol=self.symbol, timeframe=self.target,
                     ts=cur.start, bars=len(cur.volumes), expected=self.per_bucket)
            return []
        self.emitted += 1
        return [Candle(self.exchange, self.symbol, self.target, cur.start, cur.open, cur.high,
                       cur.low, cur.close, math.fsum(cur.volumes))]


def aggregate_candles(
    candles: Iterable[Candle], target: str, partial: bool = False
) -> list[Candle]:
    """Batch form of :class:`CandleAggregator` over an ordered candle sequence."""
    agg: CandleAggregator | None = None
    out: list[Candle] = []
    for c in candles:
        if agg is None:
            agg = CandleAggregator(c.symbol, target, c.timeframe, c.exchange, partial)
        out.extend(agg.push(c))
    if agg is not None:
        out.extend(agg.flush())
    return out


def aggregate_arrays(
    arrays: Mapping[str, np.ndarray], source: str, target: str, partial: bool = False
) -> dict[str, np.ndarray]:
    """Vectorised aggregation of OHLCV column arrays (strictly increasing ``ts``).

    Same buckets and completeness rule as :class:`CandleAggregator`; volumes are
    summed with :func:`math.fsum` so both paths agree bit for bit.
    """
    ts = np.asarray(arrays["ts"], dtype=np.int64)
    keys = ("ts", "open", "high", "low", "close", "volume")
    if len(ts) == 0:
        return {k: np.zeros(0, dtype=np.int64 if k == "ts" else np.float64) for k in keys}
    length = timeframe_ms(target)
    per = length // timeframe_ms(source)
    offset = WEEK_OFFSET_MS if target == "1w" else 0
    starts = ts - ((ts - offset) % length)
    first = np.flatnonzero(np.concatenate([[True], starts[1:] != starts[:-1]]))
    counts = np.diff(np.concatenate([first, [len(ts)]]))
    last = first + counts - 1
    keep = np.ones(len(first), dtype=bool) if partial else counts == per
    high = np.maximum.reduceat(np.asarray(arrays["high"], dtype=np.float64), first)
    low = np.minimum.reduceat(np.asarray(arrays["low"], dtype=np.float64), first)
    vol = np.asarray(arrays["volume"], dtype=np.float64)
    volume = np.array([math.fsum(vol[a : b + 1]) for a, b in zip(first, last, strict=True)])
    return {
        "ts": starts[first][keep],
        "open": np.asarray(arrays["open"], dtype=np.float64)[first][keep],
        "high": high[keep],
        "low": low[keep],
        "close": np.asarray(arrays["close"], dtype=np.float64)[last][keep],
        "volume": volume[keep],
    }
