"""Baselines as first-class strategies: RSI + MACD checked against an independent computation."""

from __future__ import annotations

import numpy as np
import pytest

from bot.core.buffer import CandleBuffer
from bot.marketdata.candle_csv import arrays_to_candles
from bot.core.events import Direction
from strategies.base import BarContext
from strategies.catalog import KINDS, StrategyParamError, build_strategy
from tests.strategies.test_helpers import SYMBOL, history


def ema(x: np.ndarray, n: int) -> np.ndarray:
    out, a = np.empty_like(x), 2.0 / (n + 1)
    out[0] = x[0]
    for i in range(1, len(x)):
        out[i] = out[i - 1] + a * (x[i] - out[i - 1])
    return out


def wilder_rsi(close: np.ndarray, n: int) -> np.ndarray:
    d = np.diff(close)
    up, dn = np.maximum(d, 0), np.maximum(-d, 0)
    g, lo = up[:n].mean(), dn[:n].mean()
    out = np.full(len(close), np.nan)
    out[n] = 100 - 100 / (1 + g / lo)
    for i in range(n, len(d)):
        g, lo = (g * (n - 1) + up[i]) / n, (lo * (n - 1) + dn[i]) / n
        out[i + 1] = 100 - 100 / (1 + g / lo)
    return out


def test_rsi_macd_rule_matches_independent_indicators() -> None:
    arrays = history("2021-01-01", "2021-03-01").arrays
    close = arrays["close"]
    s = build_strategy("rsi_macd", "rm", (SYMBOL,), "1h", {})
    buf, sigs = CandleBuffer(SYMBOL, "1h", 8), {}
    position = 0.0
    for c in arrays_to_candles(arrays, "binance", SYMBOL, "1h"):
        buf.append(c)
        sig = s.evaluate(BarContext(c, buf.window(2), position))
        if sig is not None:
            sigs[c.ts] = sig
            position = 1.0 if sig.direction is Direction.LONG else 0.0
    line = (ema(close, 12) - ema(close, 26)) / close
    sig_line = np.full(len(close), np.nan)
    sig_line[25:] = ema(line[25:], 9)
    hist = line - sig_line
    rsi = wilder_rsi(close, 14)
    checked = 0
    for i, t in enumerate(arrays["ts"].tolist()):
        if i < 25 + 8:
            assert t not in sigs  # warming up
            continue
        sig = sigs[t]
        if hist[i] > 0 and 50 <= rsi[i] < 70:
            assert sig.direction is Direction.LONG and sig.size_pct == 10.0
        elif hist[i] < 0 or rsi[i] >= 70:
            assert sig.direction is Direction.FLAT
        else:
            assert sig.size_pct == 0.0 and "hold" in sig.reason
        assert 50.0 <= sig.strength <= 100.0
        checked += 1
    assert checked > 1000
    directions = {s.direction for s in sigs.values()}
    assert directions == {Direction.LONG, Direction.FLAT}


@pytest.mark.parametrize(
    ("params", "key"),
    [
        pytest.param({"fast": 30, "slow": 26}, "fast < slow", id="fast-not-below-slow"),
        pytest.param({"rsi_min": 80}, "rsi_min < overbought", id="rsi-bounds"),
        pytest.param({"rsi_len": 3}, "rsi_len", id="unknown-key"),
    ],
)
def test_rsi_macd_params_validated(params, key) -> None:
    with pytest.raises(StrategyParamError, match=key):
        build_strategy("rsi_macd", "rm", (SYMBOL,), "1h", params)


def test_all_kinds_registered() -> None:
    assert {"buy_and_hold", "ma_crossover", "rsi_macd", "neural", "confluence", "confirmed"} <= set(KINDS)
