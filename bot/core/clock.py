"""The injected clock. Logic asks a ``Clock`` (``bot.core.ports``) for the time, never the OS.

``LiveClock`` reads the system clock (paper/sandbox/live daemons) and ignores market time;
``SimClock`` is advanced by the market (``advance_to``) so a backtest sees exactly the time
of the data it is replaying.
"""

from __future__ import annotations

import time

from bot.core.ports import Clock

__all__ = ["Clock", "LiveClock", "SimClock"]


class LiveClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def advance_to(self, ts_ms: int) -> None:
        """Wall time does not follow the market."""


class SimClock:
    """A clock that only moves when told to, and never backwards."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance_to(self, ts_ms: int) -> None:
        if ts_ms > self._now:
            self._now = ts_ms
