"""Registry: save -> load gives identical predictions; feature-spec mismatch fails clearly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from strategies.features.compute import DEFAULT_SPEC, FULL_SPEC
from strategies.models.spec import ModelSpec
from strategies.models.registry import (
    FeatureSpecMismatch, RegistryError, list_models, load_model, model_dir, save_model,
)
from strategies.training.synthetic import random_walk_history
from strategies.training.pipeline import Dataset, prepare, train_model

torch.set_num_threads(1)

COMMON = dict(window=16, epochs=2, stride=2, batch_size=128, seed=0)
SPECS = [
    ModelSpec(name="lstm", kind="lstm", hidden=(8, 8), dense=(4,), bidirectional=True, **COMMON),
    ModelSpec(name="cnn_lstm", kind="cnn_lstm", conv_channels=(4,), hidden=(8,), **COMMON),
    ModelSpec(name="transformer", kind="transformer", d_model=8, n_heads=2, n_layers=1, ff_dim=16, **COMMON),
    ModelSpec(name="gbm", kind="gbm", gbm_max_iter=20, **COMMON),
    ModelSpec(name="vol", kind="lstm", preset="volatility", hidden=(8,), **{**COMMON, "calibration": "none"}),
    ModelSpec(name="iso", kind="gbm", gbm_max_iter=10, calibration="isotonic", **COMMON),
]


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return Dataset.build(random_walk_history(1500, seed=5), DEFAULT_SPEC)


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_save_load_identical_predictions(ds: Dataset, spec: ModelSpec, tmp_path: Path) -> None:
    res = train_model(spec, ds)
    d = model_dir(tmp_path, "RW/USDT", "1h", spec.name)
    save_model(res.model, d, DEFAULT_SPEC, data_range=res.data_range, metrics=res.metrics,
               fit_report=res.report)
    loaded = load_model(d, DEFAULT_SPEC)
    w = prepare(ds, spec).windows
    np.testing.assert_array_equal(res.model.predict_windows(w), loaded.predict_windows(w))
    np.testing.assert_array_equal(res.model.predict(w.x(slice(0, 3))), loaded.predict(w.x(slice(0, 3))))
    meta = json.loads((d / "meta.json").read_text())
    for key in ("spec", "feature_spec_hash", "normalizer", "data_range", "metrics", "library_versions",
                "calibration", "fit_report", "weights_sha256"):
        assert key in meta
    assert meta["feature_spec_hash"] == DEFAULT_SPEC.hash()
    assert meta["library_versions"]["torch"] == torch.__version__
    assert list_models(tmp_path) == [d]


def test_feature_spec_mismatch_and_tampering(ds: Dataset, tmp_path: Path) -> None:
    res = train_model(SPECS[3], ds)
    d = save_model(res.model, tmp_path / "gbm", DEFAULT_SPEC)
    with pytest.raises(FeatureSpecMismatch, match="only in config: .*book_imbalance"):
        load_model(d, FULL_SPEC)
    load_model(d)  # no expectation: loads
    (d / "estimator.pkl").write_bytes(b"junk")
    with pytest.raises(RegistryError, match="checksum"):
        load_model(d, DEFAULT_SPEC)
    with pytest.raises(RegistryError, match="missing meta.json"):
        load_model(tmp_path / "nothing")
