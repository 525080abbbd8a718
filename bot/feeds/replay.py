"""Replay feeds: recorded candles emitted in time order through the live Engine.

``ReplayFeed`` merges any number of candle series (several symbols/timeframes)
into one stream ordered by close time, so that the Engine sees exactly what a live
feed would have delivered, bar close by bar close. ``from_csv`` and ``from_store``
build it from the normalised CSV files or from the SQLite store.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path

from bot.marketdata.candle_csv import candle_file, load_candles_csv
from bot.core.events import Candle, MarketEvent
from bot.store.store import Store


class ReplayFeed:
    def __init__(
        self, series: Iterable[Sequence[Candle]], yield_every: int = 1000, speed: float = 0.0
    ) -> None:
        """``speed``: candles per second to pace the replay at (0 = as fast as possible)."""
        self._series = [list(s) for s in series]
        self._yield_every = 1 if speed > 0 else yield_every
        self._pause = 1.0 / speed if speed > 0 else 0.0
        self._closed = False

    def __len__(self) -> int:
        return sum(len(s) for s in self._series)

    @classmethod
    def from_csv(
        cls,
        data_dir: Path | str,
        exchange: str,
        symbols: Sequence[str],
        timeframe: str,
        since_ms: int | None = None,
        until_ms: int | None = None,
        speed: float = 0.0,
    ) -> ReplayFeed:
        return cls(
            (load_candles_csv(
                candle_file(Path(data_dir), exchange, s, timeframe), exchange, s, timeframe,
                since_ms, until_ms,
            )
            for s in symbols),
            speed=speed,
        )

    @classmethod
    async def from_store(
        cls,
        store: Store,
        exchange: str,
        symbols: Sequence[str],
        timeframe: str,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> ReplayFeed:
        return cls(
            [await store.load_candles(exchange, s, timeframe, since_ms, until_ms) for s in symbols]
        )

    def candles(self) -> Iterator[Candle]:
        """Every candle this feed replays, in the order it replays them."""
        return heapq.merge(*self._series, key=lambda c: (c.close_ts, c.symbol))

    def reconnects_by_stream(self) -> dict[str, int]:
        return {}  # a replay has no connection to lose

    async def __aiter__(self) -> AsyncIterator[MarketEvent]:
        every = self._yield_every
        for i, candle in enumerate(self.candles(), 1):
            if self._closed:
                return
            yield candle
            if not i % every:
                await asyncio.sleep(self._pause)  # pace, and let other tasks run

    async def close(self) -> None:
        self._closed = True
