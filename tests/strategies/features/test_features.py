"""Feature engine: batch/stream parity, no look-ahead, rejection, fixed memory, spec hash."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from bot.marketdata.candle_csv import arrays_to_candles, load_ohlcv_arrays
from bot.core.events import Candle, OrderBook, Side, Trade
from strategies.features.buffer import FeatureBuffer
from strategies.features.compute import DEFAULT_SPEC, FULL_SPEC, FeatureSpec, compute_features, get_spec
from strategies.features.history import clean_history
from tests.paths import SHARED_DATA

DATA_DIR = Path(os.environ.get("NEURALBOT_DATA_DIR", SHARED_DATA))
BTC_1H = DATA_DIR / "ohlcv" / "binance" / "BTC_USDT-1h.csv.gz"
needs_data = pytest.mark.skipif(not BTC_1H.exists(), reason=f"real data not found at {BTC_1H}")


@pytest.fixture(scope="module")
def btc() -> dict[str, np.ndarray]:
    a = load_ohlcv_arrays(BTC_1H)
    # 3,000 rows from the 2020 stretch that has a duplicated-export region and gaps.
    i0 = int(np.searchsorted(a["ts"], 1_596_240_000_000))  # 2020-08-01
    return {k: v[i0 : i0 + 3000] for k, v in a.items()}


def assert_same(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    fin = np.isfinite(a)
    assert np.max(np.abs(a[fin] - b[fin]), initial=0.0) <= 1e-9


def stream(candles: list[Candle], spec: FeatureSpec, seed: int) -> np.ndarray:
    """Feed candles to a small fixed-capacity FeatureBuffer in random chunk sizes, collect rows."""
    rng = np.random.default_rng(seed)
    buf = FeatureBuffer("BTC/USDT", "1h", spec, n_steps=16, capacity=64)
    rows: list[np.ndarray] = []
    i = 0
    while i < len(candles):
        k = int(rng.integers(1, 60))
        accepted = buf.on_candles(candles[i : i + k])
        if accepted:
            rows.append(np.array(buf.window(accepted)))
        i += k
    return np.concatenate(rows)


@needs_data
@pytest.mark.parametrize("seed", [0, 1])
def test_batch_equals_stream_on_real_btc(btc: dict[str, np.ndarray], seed: int) -> None:
    hist = clean_history(btc, "BTC/USDT", "1h")
    batch = compute_features(hist.arrays, DEFAULT_SPEC)
    candles = arrays_to_candles(btc, "binance", "BTC/USDT", "1h")
    live = stream(candles, DEFAULT_SPEC, seed)
    assert live.shape == batch.shape == (len(hist), DEFAULT_SPEC.n_features)
    assert_same(batch, live)
    assert np.isfinite(batch[DEFAULT_SPEC.max_lookback :]).all()


@needs_data
def test_no_look_ahead(btc: dict[str, np.ndarray]) -> None:
    hist = clean_history(btc, "BTC/USDT", "1h")
    base = compute_features(hist.arrays, DEFAULT_SPEC)
    rng = np.random.default_rng(7)
    for cut in (200, 1500, 2900):
        changed = {k: v.copy() for k, v in hist.arrays.items()}
        f = rng.uniform(0.5, 2.0, size=len(changed["close"]) - cut)
        for k in ("open", "high", "low", "close"):
            changed[k][cut:] *= f
        changed["volume"][cut:] = rng.uniform(0, 1e4, size=len(f))
        feats = compute_features(changed, DEFAULT_SPEC)
        assert_same(base[:cut], feats[:cut])
        assert not np.allclose(base[cut:][np.isfinite(base[cut:])], feats[cut:][np.isfinite(base[cut:])])


def _candle(ts: int, o: float, h: float, lo: float, c: float, v: float = 1.0) -> Candle:
    return Candle("binance", "BTC/USDT", "1h", ts, o, h, lo, c, v)


@needs_data
def test_bad_candles_rejected_and_never_poison(btc: dict[str, np.ndarray]) -> None:
    candles = arrays_to_candles(btc, "binance", "BTC/USDT", "1h")[:400]
    clean = FeatureBuffer("BTC/USDT", "1h", n_steps=16, capacity=512)
    dirty = FeatureBuffer("BTC/USDT", "1h", n_steps=16, capacity=512)
    clean.on_candles(candles)
    rejected: list[str | None] = []
    for i, c in enumerate(candles):
        dirty.on_candle(c)
        if i % 50 == 10:
            bad = [
                _candle(c.ts + 1, math.nan, c.high, c.low, c.close),
                _candle(c.ts + 1, -1.0, c.high, c.low, c.close),
                _candle(c.ts + 1, c.open, c.low * 0.9, c.high, c.close),  # high < low
                _candle(c.ts - 3_600_000, c.open, c.high, c.low, c.close),  # out of order
                _candle(c.ts, c.open, c.high, c.low, c.close),  # duplicate
                Candle("binance", "ETH/USDT", "1h", c.ts + 1, 1.0, 1.0, 1.0, 1.0, 1.0),
            ]
            rejected += [dirty.on_candle(b) for b in bad]
    assert all(r is not None for r in rejected)
    assert len(dirty) == len(clean)
    np.testing.assert_array_equal(np.asarray(dirty.window()), np.asarray(clean.window()))


def test_fixed_memory_and_latest_window() -> None:
    buf = FeatureBuffer("BTC/USDT", "1h", n_steps=32, capacity=64)
    arrays_before = (buf._rows.shape, buf.candles._data.shape)  # noqa: SLF001
    rng = np.random.default_rng(0)
    price = 100.0
    assert buf.latest_window() is None
    for i in range(2000):
        nxt = price * math.exp(rng.normal(0, 0.01))
        buf.on_candle(_candle(i * 3_600_000, price, max(price, nxt) * 1.001, min(price, nxt) * 0.999, nxt, 5.0))
        price = nxt
    assert (buf._rows.shape, buf.candles._data.shape) == arrays_before  # noqa: SLF001
    assert len(buf) == 64 and buf.ready
    w = buf.latest_window()
    assert w is not None and w.shape == (1, 32, DEFAULT_SPEC.n_features) and w.dtype == np.float64
    np.testing.assert_array_equal(buf.timestamps(2), [1998 * 3_600_000, 1999 * 3_600_000])


def test_microstructure_inputs_neutral_when_absent() -> None:
    buf = FeatureBuffer("BTC/USDT", "1h", FULL_SPEC, n_steps=4, capacity=16)
    cols = FULL_SPEC.columns
    buf.on_candle(_candle(0, 100, 101, 99, 100))
    row = np.asarray(buf.window(1))[0]
    assert row[cols.index("volume_delta")] == 0 and row[cols.index("book_imbalance")] == 0
    assert row[cols.index("spread_bps")] == 0
    buf.on_order_book(OrderBook("binance", "BTC/USDT", 1, ((99.9, 3.0),), ((100.1, 1.0),)))
    buf.on_trade_event(Trade("binance", "BTC/USDT", 1, 100.0, 3.0, Side.BUY))
    buf.on_trade_event(Trade("binance", "BTC/USDT", 2, 100.0, 1.0, Side.SELL))
    buf.on_candle(_candle(3_600_000, 100, 101, 99, 100.5))
    row = np.asarray(buf.window(1))[0]
    assert row[cols.index("volume_delta")] == pytest.approx(0.5)
    assert row[cols.index("book_imbalance")] == pytest.approx(0.5)
    assert row[cols.index("spread_bps")] == pytest.approx(0.2 / 100.0 * 1e4)
    buf.on_candle(_candle(7_200_000, 100, 101, 99, 100.5))  # inputs reset per bar
    row = np.asarray(buf.window(1))[0]
    assert row[cols.index("volume_delta")] == 0 and row[cols.index("book_imbalance")] == 0


def test_batch_extras_match_stream() -> None:
    n = 300
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    arrays = {"ts": np.arange(n, dtype=np.int64) * 3_600_000, "open": close, "high": close * 1.01,
              "low": close * 0.99, "close": close, "volume": rng.uniform(1, 10, n)}
    imb = np.where(rng.random(n) < 0.3, np.nan, rng.uniform(-1, 1, n))
    batch = compute_features(arrays, FULL_SPEC, {"imbalance": imb})
    buf = FeatureBuffer("X/Y", "1h", FULL_SPEC, n_steps=4, capacity=n)
    for i, c in enumerate(arrays_to_candles(arrays, "x", "X/Y", "1h")):
        if np.isfinite(imb[i]):
            buf.on_book(math.nan, math.nan, float(imb[i]))
        buf.on_candle(c)
    assert_same(batch, np.asarray(buf.window()))


def test_spec_hash_stable_and_sensitive() -> None:
    assert DEFAULT_SPEC.hash() == FeatureSpec.from_dict(DEFAULT_SPEC.to_dict()).hash()
    assert DEFAULT_SPEC.hash() != FULL_SPEC.hash()
    assert get_spec("default") is DEFAULT_SPEC
    altered = FeatureSpec("default", DEFAULT_SPEC.features[:-1])
    assert altered.hash() != DEFAULT_SPEC.hash()
    assert len(DEFAULT_SPEC.hash()) == 16


def test_indicator_values_against_reference() -> None:
    """Spot-check formulas against direct numpy computations."""
    n = 400
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    vol = rng.uniform(1, 10, n)
    arrays = {"ts": np.arange(n, dtype=np.int64) * 3_600_000, "open": close, "high": close * 1.01,
              "low": close * 0.99, "close": close, "volume": vol}
    f = compute_features(arrays, DEFAULT_SPEC)
    col = {c: f[:, i] for i, c in enumerate(DEFAULT_SPEC.columns)}
    t = 300
    assert col["ret_24"][t] == pytest.approx(math.log(close[t] / close[t - 24]))
    w = close[t - 19 : t + 1]
    assert col["bb_width_20"][t] == pytest.approx(4 * w.std() / w.mean())
    v = vol[t - 23 : t + 1]
    assert col["volume_z_24"][t] == pytest.approx((vol[t] - v.mean()) / v.std())
    r = np.diff(np.log(close))[t - 24 : t]
    assert col["rv_24"][t] == pytest.approx(math.sqrt(np.mean(r**2)))
    a_f, a_s = 2 / 13, 2 / 27
    ef = es = close[0]
    for c in close[1 : t + 1]:
        ef += a_f * (c - ef)
        es += a_s * (c - es)
    assert col["macd_line"][t] == pytest.approx((ef - es) / close[t])
    assert 0 <= np.nanmin(col["rsi_14"]) and np.nanmax(col["rsi_14"]) <= 1
    assert col["hour_sin"][6] == pytest.approx(1.0)  # 06:00 UTC
    assert col["dow_cos"][0] == pytest.approx(math.cos(2 * math.pi * 3 / 7))  # 1970-01-01 = Thursday


@needs_data
def test_live_window_prediction_equals_backtest(btc: dict[str, np.ndarray]) -> None:
    from strategies.models.spec import ModelSpec
    from strategies.models.zoo import build_model
    from strategies.features.windows import Normalizer, Windows, valid_ends

    hist = clean_history(btc, "BTC/USDT", "1h")
    batch = compute_features(hist.arrays, DEFAULT_SPEC)
    spec = ModelSpec(name="m", kind="lstm", window=16, hidden=(8,), dense=())
    model = build_model(spec, DEFAULT_SPEC.n_features, Normalizer.fit(batch[:1000]))
    ends = valid_ends(batch, None, 16)
    backtest = model.predict_windows(Windows(batch, ends, np.zeros(len(ends), np.float32), 16))
    buf = FeatureBuffer("BTC/USDT", "1h", DEFAULT_SPEC, n_steps=16, capacity=32)
    live = []
    for c in arrays_to_candles(btc, "binance", "BTC/USDT", "1h")[:600]:
        if buf.on_candle(c) is None and (w := buf.latest_window()) is not None:
            live.append(model.predict(w)[0])
    assert len(live) > 400
    np.testing.assert_allclose(np.array(live), backtest[: len(live)], rtol=0, atol=1e-6)


@needs_data
def test_multi_timeframe_context_batch_equals_stream_and_matches_the_aggregator(
    btc: dict[str, np.ndarray],
) -> None:
    """The 4H/1D/1W features: batch == stream on real data, no look-ahead, and each one describes the
    last bar that bot.core.aggregate (the confluence strategy's aggregator) had emitted by that hour."""
    from bot.core.aggregate import aggregate_candles
    from strategies.features.compute import MTF_SPEC

    hist = clean_history(btc, "BTC/USDT", "1h")
    batch = compute_features(hist.arrays, MTF_SPEC)
    live = stream(arrays_to_candles(btc, "binance", "BTC/USDT", "1h"), MTF_SPEC, 3)
    assert_same(batch, live)
    col = MTF_SPEC.columns.index("d1_ret")
    days = aggregate_candles(arrays_to_candles(hist.arrays, "binance", "BTC/USDT", "1h"), "1d")
    closes = {d.ts: d.close for d in days}
    ts = hist.arrays["ts"]
    checked = 0
    for i in range(len(ts)):
        done = [d for d in days if d.ts + 86_400_000 <= ts[i] + 3_600_000]  # closed by this hour's close
        if len(done) > 10 and np.isfinite(batch[i, col]):
            assert batch[i, col] == pytest.approx(math.log(done[-1].close / closes[done[-2].ts]))
            checked += 1
        if checked > 50:
            break
    assert checked > 50
    cut = 2000
    changed = {k: v.copy() for k, v in hist.arrays.items()}
    for k in ("open", "high", "low", "close"):
        changed[k][cut:] *= 1.7
    assert_same(batch[:cut], compute_features(changed, MTF_SPEC)[:cut])
