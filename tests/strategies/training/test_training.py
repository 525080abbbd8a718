"""Training pipeline: split, purge, train-only normalisation, no leakage, determinism, calibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from strategies.training import classification as M
from strategies.models.calibration import IsotonicCalibrator, TemperatureScaler, sigmoid
from strategies.features.compute import DEFAULT_SPEC
from strategies.models.fit_loop import augment
from strategies.features.history import History
from strategies.models.spec import ModelSpec
from strategies.training.synthetic import hourly_pattern_history, random_walk_history
from strategies.training.targets import TargetSpec, compute_target
from strategies.training.pipeline import Dataset, prepare, train_model
from strategies.features.windows import Normalizer, chronological_split

torch.set_num_threads(1)

TINY = dict(window=24, epochs=12, patience=3, batch_size=64, lr=1e-2, stride=1, hidden=(16,), dense=(8,),
            dropout=0.0, seed=0)


def lstm(**kw: object) -> ModelSpec:
    return ModelSpec(name="lstm", kind="lstm", **{**TINY, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def rw() -> Dataset:
    return Dataset.build(random_walk_history(3000, seed=11), DEFAULT_SPEC)


def test_chronological_split_with_purge() -> None:
    ends = np.arange(100, 1100)
    s = chronological_split(ends, (0.7, 0.15, 0.15), purge=24)
    assert s.train[-1] < s.val[0] < s.val[-1] < s.test[0]
    assert s.val[0] - s.train[-1] > 24 and s.test[0] - s.val[-1] > 24
    assert abs(len(s.train) / 1000 - 0.7) < 0.03 and abs(len(s.test) / 1000 - 0.15) < 0.03
    with pytest.raises(ValueError):
        chronological_split(np.arange(5))


def test_targets() -> None:
    close = np.array([1.0, 2.0, 1.5, 1.5, 3.0])
    d = compute_target(close, TargetSpec("direction", 1))
    np.testing.assert_array_equal(d[:4], [1, 0, 0, 1])
    assert np.isnan(d[4])
    r = compute_target(close, TargetSpec("log_return", 2))
    assert r[0] == pytest.approx(np.log(1.5)) and np.isnan(r[3:]).all()
    v = compute_target(close, TargetSpec("realized_vol", 2))
    lr = np.diff(np.log(close))
    assert v[1] == pytest.approx(np.sqrt((lr[1] ** 2 + lr[2] ** 2) / 2)) and np.isnan(v[3:]).all()


def test_normalisation_uses_training_rows_only(rw: Dataset) -> None:
    spec = lstm(horizon=4)
    p = prepare(rw, spec)
    lo, hi = p.split.train_rows
    ref = Normalizer.fit(rw.features[lo - spec.window + 1 : hi + 1])
    np.testing.assert_array_equal(p.normalizer.mean, ref.mean)
    # Rewrite everything after the training rows: the statistics must not move.
    arrays = {k: v.copy() for k, v in rw.history.arrays.items()}
    for k in ("open", "high", "low", "close"):
        arrays[k][hi + 1 :] *= np.linspace(1, 5, len(arrays[k]) - hi - 1)
    arrays["volume"][hi + 1 :] *= 100
    p2 = prepare(Dataset.build(History("RW/USDT", "1h", arrays), DEFAULT_SPEC), spec)
    np.testing.assert_array_equal(p2.split.train, p.split.train)
    np.testing.assert_array_equal(p2.normalizer.mean, p.normalizer.mean)
    np.testing.assert_array_equal(p2.normalizer.std, p.normalizer.std)
    assert p.split.val[0] - p.split.train[-1] > spec.purge_bars


@pytest.mark.parametrize("kind", ["lstm", "gbm"])
def test_pipeline_at_chance_on_random_walk(rw: Dataset, kind: str) -> None:
    spec = lstm() if kind == "lstm" else ModelSpec(name="gbm", kind="gbm", window=24, stride=1, gbm_max_iter=100)
    res = train_model(spec, rw)
    acc = res.metrics["test"]["accuracy"]
    assert 0.42 < acc < 0.58, f"{kind}: test accuracy {acc:.3f} on a random walk -> leakage?"
    assert 0.4 < res.metrics["test"]["auc"] < 0.6


def test_pipeline_learns_hourly_pattern_and_is_deterministic() -> None:
    ds = Dataset.build(hourly_pattern_history(2500, seed=3), DEFAULT_SPEC)
    spec = lstm(epochs=8)
    a = train_model(spec, ds)
    assert a.metrics["test"]["accuracy"] > 0.9
    assert set(a.data_range) >= {"train_ts", "val_ts", "test_ts", "purge_bars", "rows"}
    b = train_model(spec, ds)
    w = prepare(ds, spec).windows
    np.testing.assert_array_equal(a.model.predict_windows(w), b.model.predict_windows(w))


def test_early_stopping_and_lr_schedule(rw: Dataset) -> None:
    res = train_model(lstm(epochs=40, patience=2, lr_patience=0, lr=3e-2, augment_noise=0.1,
                           augment_shift=4, augment_scale=0.1), rw)
    assert res.report.stopped_early and res.report.epochs_run < 40
    assert res.report.final_lr < 3e-2
    assert res.report.best_epoch == int(np.argmin(res.report.val_loss)) + 1


def test_augment_keeps_recent_steps() -> None:
    x = np.random.default_rng(0).normal(size=(50, 10, 3)).astype(np.float32)
    y = augment(x.copy(), np.random.default_rng(1), noise=0.0, shift=4, scale=0.0)
    np.testing.assert_array_equal(y[:, 4:], x[:, 4:])
    assert not np.array_equal(y, x)


def test_calibrators() -> None:
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, 20000)
    y = (rng.random(len(z)) < sigmoid(z / 2.5)).astype(float)
    t = TemperatureScaler.fit(z, y)
    assert t.temperature == pytest.approx(2.5, rel=0.1)
    assert M.ece(y, t(z)) < M.ece(y, sigmoid(z))
    iso = IsotonicCalibrator.fit(z, y)
    p = iso(np.sort(z))
    assert np.all(np.diff(p) >= 0) and M.ece(y, iso(z)) < 0.02


def test_metrics_match_sklearn() -> None:
    from sklearn import metrics as skm

    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.4).astype(float)
    p = np.clip(0.3 * y + 0.7 * rng.random(500), 0, 1)
    p[:20] = 0.5  # ties
    m = M.classification_metrics(y, p)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p >= 0.5))
    assert m["precision"] == pytest.approx(skm.precision_score(y, p >= 0.5))
    assert m["recall"] == pytest.approx(skm.recall_score(y, p >= 0.5))
    assert m["f1"] == pytest.approx(skm.f1_score(y, p >= 0.5))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p), rel=1e-6)
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p))
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert 0 <= m["ece"] <= 1
