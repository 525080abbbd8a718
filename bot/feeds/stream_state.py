"""What the live feed keeps per stream (its counters, where a candle stream stands), and its start-up error."""

from __future__ import annotations

from dataclasses import dataclass


class ClockSkewError(RuntimeError):
    """The local clock disagrees with the exchange's beyond the configured tolerance."""


@dataclass(slots=True)
class StreamStats:
    emitted: int = 0
    backfilled: int = 0  # bars the stream never showed closing (gaps, reconnects, start-up)
    duplicates: int = 0
    # network errors this stream's watch call raised; ccxt reconnects silently on many
    # drops, so this undercounts: ``LiveFeed.reconnects`` counts actual re-connections
    reconnects: int = 0
    stale: int = 0
    errors: int = 0
    rate_limited: int = 0
    resyncs: int = 0


@dataclass(slots=True)
class CandleState:
    symbol: str
    timeframe: str
    tf_ms: int
    last_ts: int  # open time of the last emitted bar
    stats: StreamStats
