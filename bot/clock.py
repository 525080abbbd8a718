"""The injected clock. Logic asks a ``Clock`` for the time, never the OS.

``LiveClock`` reads the system clock (paper/sandbox/live daemons); ``SimClock`` is
advanced by the replay feed so a backtest sees exactly the time of the data it is
replaying.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Current time in milliseconds since the epoch (UTC)."""
        ...


class LiveClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class SimClock:
    """A clock that only moves when told to, and never backwards."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance_to(self, ts_ms: int) -> None:
        if ts_ms > self._now:
            self._now = ts_ms
