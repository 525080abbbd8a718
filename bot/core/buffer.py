"""Fixed-capacity rolling candle buffer, one per (symbol, timeframe).

A numpy ring buffer: memory is allocated once and never grows with run time.
Candles are validated on the way in; a NaN, non-positive, inverted or
out-of-order candle is rejected with a logged reason and never enters.
``window(n)`` returns the last ``n`` rows in time order as contiguous arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import structlog

from bot.core.events import Candle

log = structlog.get_logger(__name__)

COLUMNS = ("ts", "open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class OHLCV:
    """Column arrays of a window of candles, oldest first (read-only views or copies)."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])


# A window is built once per bar and strategy: made without the frozen dataclass's ``__init__``
# (six ``object.__setattr__`` calls), by the slots' own setters, twice as fast.
_new = object.__new__
_SET_COLUMNS = tuple(OHLCV.__dict__[f.name].__set__ for f in fields(OHLCV))


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
        self._writable = tuple(self._data[i] for i in range(6))  # six scalar stores beat one tuple store
        self._start = 0
        self._len = 0
        self.last_ts: int | None = None
        self.rejected = 0

    def __len__(self) -> int:
        return self._len

    def append(self, candle: Candle) -> str | None:
        """Add a closed candle. Returns ``None`` if accepted, else the rejection reason."""
        reason = candle.problem()
        if reason is None and self.last_ts is not None and candle.ts <= self.last_ts:
            reason = "duplicate candle" if candle.ts == self.last_ts else "out-of-order candle"
        if reason is not None:
            self.rejected += 1
            log.warning(
                "candle_rejected",
                symbol=candle.symbol,
                timeframe=candle.timeframe,
                ts=candle.ts,
                reason=reason,
            )
            return reason
        if self._start + self._len == 2 * self.capacity:
            # Slide the live window back to the front; amortised O(1) per append.
            keep = self._len
            self._data[:, :keep] = self._data[:, self._start : self._start + keep]
            self._start = 0
        row = self._start + self._len
        ts, o, h, lo, c, v = self._writable
        ts[row], o[row], h[row], lo[row], c[row], v[row] = (
            candle.ts, candle.open, candle.high, candle.low, candle.close, candle.volume,
        )
        if self._len < self.capacity:
            self._len += 1
        else:
            self._start += 1
        self.last_ts = candle.ts
        return None

    def window(self, n: int | None = None) -> OHLCV:
        """The last ``n`` candles (all if ``None``), oldest first, as read-only views."""
        end = self._start + self._len
        first = self._start if n is None or n >= self._len else end - n
        ts, o, h, lo, c, v = self._columns
        w = _new(OHLCV)
        set_ts, set_o, set_h, set_lo, set_c, set_v = _SET_COLUMNS
        set_ts(w, ts[first:end])
        set_o(w, o[first:end])
        set_h(w, h[first:end])
        set_lo(w, lo[first:end])
        set_c(w, c[first:end])
        set_v(w, v[first:end])
        return w

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
