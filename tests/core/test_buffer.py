"""The candle ring buffer: every window is the last candles in time order, read-only, across the slides."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.buffer import CandleBuffer
from bot.core.events import Candle


def candle(i: int, close: float) -> Candle:
    return Candle("binance", "BTC/USDT", "1h", i * 3_600_000, close, close * 1.01, close * 0.99, close, float(i))


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 9), st.lists(st.floats(1.0, 1e5), min_size=1, max_size=60), st.integers(1, 12))
def test_window_is_the_last_candles_across_slides(capacity: int, closes: list[float], n: int) -> None:
    buf = CandleBuffer("BTC/USDT", "1h", capacity)
    seen: list[Candle] = []
    for i, close in enumerate(closes):
        c = candle(i, close)
        assert buf.append(c) is None
        seen.append(c)
        w = buf.window(n)
        tail = seen[-min(n, capacity) :]
        assert len(w) == len(tail)
        assert w.ts.tolist() == [float(x.ts) for x in tail]
        assert w.close.tolist() == [x.close for x in tail] and w.volume.tolist() == [x.volume for x in tail]
        assert all(a.flags.c_contiguous and not a.flags.writeable for a in (w.ts, w.open, w.close))
        assert buf.window().ts.tolist() == [float(x.ts) for x in seen[-capacity:]]


def test_a_window_cannot_write_into_the_buffer() -> None:
    buf = CandleBuffer("BTC/USDT", "1h", 4)
    buf.append(candle(0, 100.0))
    with pytest.raises(ValueError):
        buf.window(1).close[0] = 1.0
    assert np.isclose(buf.last_close or 0.0, 100.0)
