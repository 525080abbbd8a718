"""The moving-average crossover's prepared replay: every signal bit-identical to bar-by-bar
evaluation, whatever the Engine's buffer rejects, and its vectorised sums equal to numpy's."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.buffer import CandleBuffer
from bot.core.events import Candle, Signal
from bot.marketdata.candle_csv import arrays_to_candles
from strategies.base import BarContext
from strategies.baselines import MovingAverageCrossover
from strategies.window_sums import trailing_sums
from tests.strategies.test_helpers import SYMBOL, history


def replay(candles: list[Candle], prepare: list[Candle] | None, fast: int = 20, slow: int = 50,
           ) -> list[Signal | None]:
    """What the Engine asks of the strategy: accepted candles only, from the warmup on."""
    s = MovingAverageCrossover("ma", (SYMBOL,), "1h", fast=fast, slow=slow)
    if prepare is not None:
        s.prepare_replay(SYMBOL, prepare)
    buf, out = CandleBuffer(SYMBOL, "1h", 4 * slow), []
    for c in candles:
        if buf.append(c) is None and len(buf) >= s.warmup:
            out.append(s.evaluate(BarContext(c, buf.window(s.warmup), 0.0)))
    return out


def candles_of(start: str, end: str) -> list[Candle]:
    return arrays_to_candles(history(start, end).arrays, "binance", SYMBOL, "1h")


def test_prepared_replay_of_the_whole_series_is_bar_by_bar() -> None:
    candles = candles_of("2017-08-17", "2022-01-01")
    prepared = replay(candles, candles)
    assert len(prepared) == len(candles) - 49 and all(s is not None for s in prepared)
    assert prepared == replay(candles, None)  # every field, the reason string included


def test_trailing_sums_equal_numpy_over_the_whole_series() -> None:
    close = history("2017-08-17", "2022-01-01").arrays["close"]
    for n in (1, 20, 50, 200):
        expect = np.array([np.add.reduce(close[j : j + n]) for j in range(len(close) - n + 1)])
        assert np.array_equal(trailing_sums(close, n), expect)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(1e-3, 1e9, allow_nan=False), min_size=0, max_size=400), st.integers(1, 300))
def test_trailing_sums_equal_numpy_on_random_series(values: list[float], n: int) -> None:
    x = np.array(values, dtype=np.float64)
    expect = [np.add.reduce(x[j : j + n]) for j in range(len(x) - n + 1)]
    assert trailing_sums(x, n).tolist() == [float(e) for e in expect]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1.0, 1e6, allow_nan=False), min_size=0, max_size=160),
       st.integers(1, 12), st.integers(1, 30))
def test_prepared_random_series_is_bar_by_bar(closes: list[float], fast: int, extra: int) -> None:
    candles = [Candle("binance", SYMBOL, "1h", 3_600_000 * (400_000 + i), c, c, c, c, 1.0)
               for i, c in enumerate(closes)]
    assert replay(candles, candles, fast, fast + extra) == replay(candles, None, fast, fast + extra)


def test_rejected_and_out_of_order_candles_keep_signals_bar_by_bar() -> None:
    candles = candles_of("2021-01-01", "2021-02-01")
    broken = list(candles)
    broken[10] = replace(broken[10], low=-1.0)  # during the warmup: rejected, non-positive price
    broken[120] = replace(broken[120], high=broken[120].low / 2)  # rejected, high below low
    broken.insert(200, broken[150])  # out of order: rejected
    broken.insert(300, replace(broken[299], close=broken[299].low))  # a duplicate open time: rejected
    expect = replay(broken, None)
    assert replay(broken, broken) == expect
    assert len(expect) == len(broken) - 4 - 49


def test_a_bar_not_prepared_falls_back_to_bar_by_bar() -> None:
    candles = candles_of("2021-01-01", "2021-02-01")
    shown = list(candles)
    shown[100] = replace(shown[100], close=shown[100].close * 1.01)  # not the candle prepared
    del shown[300]  # and one the Engine never sees
    expect = replay(shown, None)
    assert replay(shown, candles) == expect
    assert replay(shown, candles[:200]) == expect  # a replay longer than prepared
    assert replay(candles[:200], shown) == replay(candles[:200], None)
