"""Meta-labeling: the primary trend side, the meta-labels, the bet size, and the strategy."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bot.core.buffer import CandleBuffer
from bot.marketdata.candle_csv import arrays_to_candles
from bot.core.events import Direction
from strategies.base import BarContext
from strategies.catalog import build_strategy
from strategies.features.compute import DEFAULT_SPEC, compute_features
from strategies.training.labels import BarrierSpec, meta_labels, model_labels, trend_side
from strategies.meta import bet_size
from strategies.models.spec import ModelSpec
from strategies.models.registry import model_dir, save_model
from strategies.training.pipeline import Dataset, train_model
from tests.strategies.test_helpers import SYMBOL, history

META = ModelSpec(name="meta", kind="gbm", target="meta_trend", horizon=12, window=24, gbm_max_iter=20,
                 gbm_lags=(0, 1, 3), meta_fast=5, meta_slow=20, class_balance=False,
                 cost=0.0, barrier_floor=0.0)  # no cost: about half the longs win, so q straddles 0.5


def test_trend_side_is_the_sma_cross_of_past_closes() -> None:
    close = np.array([1.0, 2, 3, 4, 3, 2, 1, 1])
    side = trend_side(close, 2, 4)
    # row 3: sma2 = 3.5 > sma4 = 2.5; row 5: sma2 = 2.5 < sma4 = 3.0
    assert side.tolist() == [False, False, False, True, True, False, False, False]


def test_meta_labels_hand_computed() -> None:
    close = 100 * np.exp(np.array([0.0, 0.01, 0.02, 0.0, -0.02, -0.03]))
    side = np.array([True, False, True, True, False, False])
    spec = BarrierSpec(horizon=2, k=1.0, floor_multiple=0.0, cost=0.005)
    lab = meta_labels(close, side, np.full(6, 0.005), spec)  # barriers +-0.00707
    assert lab.y[0] == 1.0  # long at row 0: +1% at row 1 (upper touch), > 0.5% cost
    assert np.isnan(lab.y[1])  # primary flat: no label
    assert lab.y[2] == 0.0  # long at row 2: -2% at row 3
    assert lab.y[3] == 0.0  # long at row 3: -2% at row 4
    assert np.isnan(lab.y[4:]).all()
    assert lab.end[:4].tolist() == [1, 2, 3, 4]  # row 1 (flat, unlabelled) still has its span


def test_bet_size_from_probability() -> None:
    assert bet_size(0.5) == 0.0 and bet_size(0.4) == 0.0 and bet_size(float("nan")) == 0.0
    z = 0.1 / math.sqrt(0.6 * 0.4)
    assert bet_size(0.6) == pytest.approx(2 * 0.5 * (1 + math.erf(z / math.sqrt(2))) - 1)
    assert bet_size(0.6, min_probability=0.65) == 0.0  # the veto
    assert 0 < bet_size(0.6) < bet_size(0.8) < bet_size(0.95) < 1


def test_meta_labels_never_use_information_after_the_primary_signals_bar() -> None:
    """What the secondary sees at bar t (its input window, the primary side) is unchanged when every
    later price changes; the label itself resolves after t, at its trade's first touch."""
    arrays = history("2020-06-01", "2020-08-01").arrays
    t0 = len(arrays["close"]) - 300
    moved = {k: v.copy() for k, v in arrays.items()}
    for k in ("open", "high", "low", "close"):
        moved[k][t0 + 1 :] *= np.linspace(0.7, 1.6, len(moved[k]) - t0 - 1)
    side_a = trend_side(arrays["close"], META.meta_fast, META.meta_slow)
    side_b = trend_side(moved["close"], META.meta_fast, META.meta_slow)
    np.testing.assert_array_equal(side_a[: t0 + 1], side_b[: t0 + 1])
    fa, fb = compute_features(arrays, DEFAULT_SPEC), compute_features(moved, DEFAULT_SPEC)
    np.testing.assert_array_equal(fa[: t0 + 1], fb[: t0 + 1])
    la, lb = model_labels(arrays, META, "1h"), model_labels(moved, META, "1h")
    done = np.flatnonzero((la.end >= 0) & (la.end <= t0))  # labels resolved by t0 ...
    np.testing.assert_array_equal(la.y[done], lb.y[done])  # ... do not change
    rows = np.flatnonzero(np.isfinite(la.y))
    assert (la.end[rows] > rows).all() and (np.isfinite(la.y) <= side_a).all()  # labels only on longs


@pytest.fixture(scope="module")
def meta_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("meta") / "models"
    res = train_model(META, Dataset.build(history("2020-06-01", "2020-10-01"), DEFAULT_SPEC))
    save_model(res.model, model_dir(root, SYMBOL, "1h", "meta"), DEFAULT_SPEC, data_range=res.data_range,
               metrics=res.metrics, fit_report=res.report)
    return root


def test_the_secondary_never_trades_alone(meta_dir: Path) -> None:
    strat = build_strategy("meta_labeled", "meta", (SYMBOL,), "1h",
                           {"models": ["meta"], "models_dir": str(meta_dir), "fast": 5, "slow": 20})
    arrays = history("2020-10-01", "2020-10-20").arrays
    closes, buf, position, entries, vetoes = [], CandleBuffer(SYMBOL, "1h", 4), 0.0, 0, 0
    for c in arrays_to_candles(arrays, "binance", SYMBOL, "1h"):
        buf.append(c)
        closes.append(c.close)
        sig = strat.evaluate(BarContext(c, buf.window(1), position))
        if sig is None:
            continue
        primary = np.mean(closes[-5:]) > np.mean(closes[-20:])
        if sig.direction is Direction.LONG and sig.size_pct > 0 and position == 0:
            assert primary and "primary long" in sig.reason  # an entry needs the primary's long
            entries, position = entries + 1, 1.0
        elif sig.direction is Direction.FLAT:
            assert not primary or "vetoed" in sig.reason
            vetoes += "vetoed" in sig.reason
            position = 0.0
    assert entries > 0 and vetoes > 0
