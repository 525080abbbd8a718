"""The Feed port: where market events come from.

Backtest, paper and live trading differ only in their Feed (and exchange port and
clock): ``ReplayFeed`` replays stored or CSV candles, the ccxt.pro live feed
streams from an exchange. Both are async iterators of market events in time order.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from bot.core.events import MarketEvent


@runtime_checkable
class Feed(Protocol):
    def __aiter__(self) -> AsyncIterator[MarketEvent]: ...

    async def close(self) -> None: ...

    def reconnects_by_stream(self) -> dict[str, int]:
        """Per stream (``SYMBOL TIMEFRAME``, books, trades): how often it lost its connection
        (a replay never does: empty)."""
        ...
