"""The candle ring buffer: every window is the last candles in time order, read-only, across the slides."""

from __future__ import annotations

import math

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


def _problem_before(c: Candle) -> str | None:
    """``Candle.problem`` as it read before its one-chain path: the reference it must match."""
    if not math.isfinite(c.open + c.high + c.low + c.close + c.volume):
        return "non-finite value"
    if min(c.open, c.high, c.low, c.close) <= 0:
        return "non-positive price"
    if c.high < c.low:
        return "high below low"
    if c.high < max(c.open, c.close) or c.low > min(c.open, c.close):
        return "open/close outside high-low range"
    if c.volume < 0:
        return "negative volume"
    return None


EDGES = st.sampled_from([0.0, -0.0, -1.0, 1e-300, 1.0, 2.0, 3.0, 1e299, 1e300, 1e308, math.inf, -math.inf, math.nan])


# ints compare exactly with floats; numpy scalars mixed with floats do not (float16 sums overflow at 65504)
VALUE = EDGES | st.floats() | st.integers(-3, 3) | st.floats(width=16).map(np.float16)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # numpy scalars overflow, as they always did
@settings(max_examples=3000, deadline=None)
@given(VALUE, VALUE, VALUE, VALUE, VALUE)
def test_candle_problem_names_the_same_faults_as_before(o: float, h: float, lo: float, c: float, v: float) -> None:
    """The one-chain path accepts only what every check accepts (sums that overflow included)."""
    bar = Candle("binance", "BTC/USDT", "1h", 0, o, h, lo, c, v)
    assert bar.problem() == _problem_before(bar)


def test_the_same_candles_are_rejected_for_the_same_reasons() -> None:
    buf = CandleBuffer("BTC/USDT", "1h", 4)
    huge = Candle("binance", "BTC/USDT", "1h", 0, 1e308, 1e308, 1e308, 1e308, 0.0)  # its sum overflows
    assert buf.append(huge) == "non-finite value"
    assert buf.append(Candle("binance", "BTC/USDT", "1h", 0, 2.0, 3.0, 1.0, 2.5, math.nan)) == "non-finite value"
    assert buf.append(Candle("binance", "BTC/USDT", "1h", 0, 2.0, 3.0, 1.0, 3.5, 1.0)) == \
        "open/close outside high-low range"
    assert buf.append(candle(1, 100.0)) is None
    assert buf.append(candle(1, 100.0)) == "duplicate candle"
    assert buf.append(candle(0, 100.0)) == "out-of-order candle"
    assert len(buf) == 1 and buf.rejected == 5


def test_stored_values_are_the_doubles_numpy_would_store() -> None:
    """Ints, numpy scalars and floats enter as numpy's own float64 conversion of them."""
    buf = CandleBuffer("BTC/USDT", "1h", 4)
    rows = [(np.int64(1_502_942_400_000), 4261.48, 4313.62, 4261.32, 4308.83, 47.181009),
            (1_502_946_000_000, np.float32(4308.83), 4330, np.float64(4291.37), 4315.32, np.float32(23.234916)),
            (2**53 + 1, 0.1 + 0.2, 1e299, 1e-300, 7, 0)]
    for ts, *ohlcv in rows:
        assert buf.append(Candle("binance", "BTC/USDT", "1h", ts, *ohlcv)) is None  # type: ignore[arg-type]
    w = buf.window()
    expected = np.array(rows, dtype=object).T
    for got, want in zip((w.ts, w.open, w.high, w.low, w.close, w.volume), expected, strict=True):
        np.testing.assert_array_equal(got, np.array(list(want), dtype=np.float64))
