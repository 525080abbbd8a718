"""Fixed-capacity rolling candle buffer, one per (symbol, timeframe).

A numpy ring buffer: memory is allocated once and never grows with run time.
Candles are validated on the way in; a NaN, non-positive, inverted or
out-of-order candle is rejected with a logged reason and never enters.
``window(n)`` returns the last ``n`` rows in time order as contiguous arrays.
"""

from __future__ import annotations

import numpy as np
import structlog

from bot.core.events import Candle

log = structlog.get_logger(__name__)

COLUMNS = ("ts", "open", "high", "low", "close", "volume")


class OHLCV:
    """Column arrays of a window of candles, oldest first: read-only views of the buffer.

    A window is made once per bar and strategy, and most strategies read one or two of its
    six columns: each column is sliced when read (the same view of the same rows that slicing
    when the window was made would give). Immutable: the columns are properties.
    """

    __slots__ = ("_columns", "_first", "_end")

    def __init__(self, columns: tuple[np.ndarray, ...], first: int, end: int) -> None:
        self._columns, self._first, self._end = columns, first, end

    @property
    def ts(self) -> np.ndarray:
        return self._columns[0][self._first : self._end]

    @property
    def open(self) -> np.ndarray:
        return self._columns[1][self._first : self._end]

    @property
    def high(self) -> np.ndarray:
        return self._columns[2][self._first : self._end]

    @property
    def low(self) -> np.ndarray:
        return self._columns[3][self._first : self._end]

    @property
    def close(self) -> np.ndarray:
        return self._columns[4][self._first : self._end]

    @property
    def volume(self) -> np.ndarray:
        return self._columns[5][self._first : self._end]

    def __len__(self) -> int:
        return max(0, self._end - self._first)


class CandleBuffer:
    def __init__(self, symbol: str, timeframe: str, capacity: int = 2048) -> None:
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self.symbol = symbol
        self.timeframe = timeframe
        self.capacity = capacity
        # Twice the capacity so any window is one contiguous slice (no copies on read).
        self._data = np.zeros((6, 2 * capacity), dtype=np.float64)
        # read-only views of the six columns, made once: a window is six slices of them
        self._columns = tuple(self._readonly(self._data[i]) for i in range(6))
        # six scalar stores through memoryviews: half the cost of numpy item assignment, the same doubles
        self._writable = tuple(memoryview(self._data[i]) for i in range(6))
        self._start = 0
        self._len = 0
        self.last_ts: int | None = None
        self.rejected = 0

    def __len__(self) -> int:
        return self._len

    def append(self, candle: Candle) -> str | None:
        """Add a closed candle. Returns ``None`` if accepted, else the rejection reason."""
        reason = candle.problem()
        ts = candle.ts
        last_ts = self.last_ts
        if reason is None and last_ts is not None and ts <= last_ts:
            reason = "duplicate candle" if ts == last_ts else "out-of-order candle"
        if reason is not None:
            self.rejected += 1
            log.warning(
                "candle_rejected",
                symbol=candle.symbol,
                timeframe=candle.timeframe,
                ts=ts,
                reason=reason,
            )
            return reason
        start, length = self._start, self._len
        if start + length == 2 * self.capacity:
            # Slide the live window back to the front; amortised O(1) per append.
            self._data[:, :length] = self._data[:, start : start + length]
            self._start = start = 0
        row = start + length
        t, o, h, lo, c, v = self._writable
        t[row], o[row], h[row], lo[row], c[row], v[row] = (
            ts, candle.open, candle.high, candle.low, candle.close, candle.volume,
        )
        if length < self.capacity:
            self._len = length + 1
        else:
            self._start = start + 1
        self.last_ts = ts
        return None

    def window(self, n: int | None = None) -> OHLCV:
        """The last ``n`` candles (all if ``None``), oldest first, as read-only views."""
        end = self._start + self._len
        return OHLCV(self._columns, self._start if n is None or n >= self._len else end - n, end)

    @staticmethod
    def _readonly(column: np.ndarray) -> np.ndarray:
        view = column.view()
        view.flags.writeable = False
        return view

    @property
    def last_close(self) -> float | None:
        if self._len == 0:
            return None
        return float(self._data[4, self._start + self._len - 1])
