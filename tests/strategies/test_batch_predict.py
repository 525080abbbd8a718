"""A prediction table's workers: the same values as one model's batch loop, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from strategies.features.compute import DEFAULT_SPEC, compute_features
from strategies.features.windows import Windows, valid_ends
from strategies.models.registry import list_models, load_model
from strategies.predictor import ModelHolder, predict_table
from strategies.table_fill import TableFill
from tests.strategies.test_helpers import MODEL_NAMES, SYMBOL, history, tiny_models_dir
from tests.strategies.test_table_fill import broken_like


@pytest.fixture(scope="module")
def models():
    return {p.name: load_model(p) for p in list_models(tiny_models_dir())}


@pytest.fixture(scope="module")
def feats() -> np.ndarray:
    return compute_features(history("2021-01-01", "2021-03-01").arrays, DEFAULT_SPEC)


def _one_loop(model, feats: np.ndarray, batch_size: int) -> np.ndarray:
    """What a table held before workers: ``predict_windows`` of every full window at once."""
    out = np.full(len(feats), np.nan)
    ends = valid_ends(feats, None, model.window)
    out[ends] = model.predict_windows(Windows(feats, ends, np.full(len(ends), np.nan, np.float32), model.window),
                                      batch_size)
    return out


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_workers_give_the_batch_loop_values_bit_for_bit(models, feats, workers) -> None:
    got = TableFill(models, feats, batch_size=64, workers=workers).result()  # many chunks per model
    assert set(got) == set(models)
    for name, m in models.items():
        want = _one_loop(m, feats, 64)
        assert np.isfinite(want).sum() > 1000
        np.testing.assert_array_equal(got[name], want, err_msg=name)


def test_a_table_with_workers_is_the_table_without(models) -> None:
    h = history("2021-01-01", "2021-03-01")
    holder = ModelHolder("ens", SYMBOL, "1h", {n: models[n] for n in MODEL_NAMES}, vol_model=models["vol"])
    one, two = (predict_table(holder, DEFAULT_SPEC, h, 168, workers=w) for w in (1, 2))
    for name in MODEL_NAMES:
        np.testing.assert_array_equal(one.probs[name], two.probs[name])
    np.testing.assert_array_equal(one.vol, two.vol)
    assert set(two.probs) == set(MODEL_NAMES)


def test_a_failing_job_raises_to_the_caller(models, feats) -> None:
    broken = broken_like(models["gbm"])
    with pytest.raises(RuntimeError, match="broken model"):
        TableFill({"lstm": models["lstm"], "bad": broken}, feats, batch_size=64, workers=2).result()

