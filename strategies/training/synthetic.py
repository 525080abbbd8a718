"""Synthetic data with known answers, for tests and benchmarks (no look-ahead by construction).

* :func:`planted_features` - iid N(0, 1) feature rows whose label at row ``t`` is
  ``x[t, 0] - x[t - lag, 1] > 0``: learnable only by looking back ``lag`` steps;
* :func:`noise_features` - the same rows with labels independent of everything;
* :func:`random_walk_history` - a geometric random walk: the future is
  unpredictable, so any accuracy far from 0.5 means leakage;
* :func:`hourly_pattern_history` - prices rise in UTC hours 0-11 and fall in
  12-23 (random magnitudes): learnable through the calendar features.
"""

from __future__ import annotations

import numpy as np

from strategies.features.history import History
from strategies.features.windows import Windows

HOUR_MS = 3_600_000
T0 = 1_600_000_000_000 - (1_600_000_000_000 % HOUR_MS)


def planted_features(n: int, n_features: int, window: int, lag: int = 3, seed: int = 0) -> Windows:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features))
    y = np.full(n, np.nan)
    y[lag:] = (x[lag:, 0] - x[:-lag, 1] > 0).astype(np.float64)
    ends = np.arange(window - 1, n)
    return Windows(x, ends, y[ends].astype(np.float32), window)


def noise_features(n: int, n_features: int, window: int, seed: int = 0) -> Windows:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_features))
    ends = np.arange(window - 1, n)
    y = (rng.random(len(ends)) < 0.5).astype(np.float32)
    return Windows(x, ends, y, window)


def _ohlcv_from_returns(r: np.ndarray, rng: np.random.Generator, symbol: str) -> History:
    n = len(r)
    close = 100.0 * np.exp(np.cumsum(r))
    open_ = np.concatenate([[100.0], close[:-1]])
    wick = np.abs(rng.normal(0, 0.002, size=(2, n)))
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    volume = rng.lognormal(3.0, 0.5, size=n)
    ts = T0 + HOUR_MS * np.arange(n, dtype=np.int64)
    arrays = {"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume}
    return History(symbol, "1h", arrays)


def random_walk_history(n: int, seed: int = 0, vol: float = 0.01) -> History:
    rng = np.random.default_rng(seed)
    return _ohlcv_from_returns(rng.normal(0.0, vol, size=n), rng, "RW/USDT")


def hourly_pattern_history(n: int, seed: int = 0, vol: float = 0.01) -> History:
    rng = np.random.default_rng(seed)
    hours = ((T0 // HOUR_MS) + np.arange(n)) % 24
    sign = np.where(hours < 12, 1.0, -1.0)
    return _ohlcv_from_returns(sign * np.abs(rng.normal(0.0, vol, size=n)), rng, "PAT/USDT")
