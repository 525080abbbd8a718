"""Cost-aware labels in training and walk-forward: real-span purging and uniqueness weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bot.evaluation.schedule import WalkForwardConfig
from bot.evaluation.walkforward import check_fold, make_folds
from strategies.features.compute import DEFAULT_SPEC
from strategies.training.labels import model_labels
from strategies.models.spec import ModelSpec
from strategies.training.synthetic import random_walk_history
from strategies.training.pipeline import Dataset, prepare, train_model
from strategies.features.windows import chronological_split

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def rw() -> Dataset:
    return Dataset.build(random_walk_history(3000, seed=5), DEFAULT_SPEC)


def test_split_keeps_a_label_that_resolves_before_the_cut_and_drops_one_that_does_not() -> None:
    ends = np.arange(100)
    # every label resolves 10 bars later, except row 65 (first touch after 2 bars)
    label_end = ends + 10
    label_end[65] = 67
    s = chronological_split(ends, (0.7, 0.15, 0.15), purge=0, label_end=label_end)
    assert 65 in s.train  # its real span ends at 67 < 70
    assert 64 not in s.train and 59 in s.train  # 64 + 10 >= 70; 59 + 10 < 70
    fixed = chronological_split(ends, (0.7, 0.15, 0.15), purge=10)
    assert 65 not in fixed.train  # a fixed H purge throws it away


def test_triple_barrier_model_trains_with_uniqueness_weights_and_real_span_purge(rw: Dataset) -> None:
    spec = ModelSpec(name="tb", kind="gbm", target="triple_barrier", horizon=12, window=24,
                     gbm_max_iter=20, barrier_k=1.0, barrier_floor=2.0, cost=0.0032)
    assert spec.weighted and spec.task == "classification"
    p = prepare(rw, spec)
    labels = model_labels(rw.history.arrays, spec, "1h")
    # no training label resolves at or after the first validation window
    assert labels.end[p.split.train].max() < p.split.val.min()
    assert labels.end[p.split.val].max() < p.split.test.min()
    tr = p.part(p.split.train)
    assert tr.w is not None and tr.w.mean() == pytest.approx(1.0) and tr.w.min() < 1.0
    res = train_model(spec, rw)
    assert res.data_range["sample_weights"] == "uniqueness"
    assert res.data_range["target"] == {"kind": "triple_barrier", "horizon": 12}
    assert 0.0 <= res.metrics["test"]["accuracy"] <= 1.0


def test_one_bar_direction_labels_are_unweighted(rw: Dataset) -> None:
    spec = ModelSpec(name="d", kind="gbm", horizon=1, window=24)
    assert not spec.weighted
    assert prepare(rw, spec).windows.w is None


def test_walk_forward_folds_purge_by_label_span(rw: Dataset) -> None:
    spec = ModelSpec(name="tb", kind="gbm", target="triple_barrier", horizon=24, window=24)
    labels = model_labels(rw.history.arrays, spec, "1h")
    ts = rw.history.arrays["ts"]
    ends = np.arange(23, len(ts))
    cfg = WalkForwardConfig(min_train_days=60, retrain_every="10d", val_fraction=0.2)
    folds = make_folds(ts, ends, cfg, 24, labels.end)
    assert folds
    for f in folds:
        check_fold(f, 24, 24, labels.end)
        assert labels.end[np.concatenate([f.train, f.val])].max() < f.test.min()
    # a label touched early is fitted on even when t + H reaches into the test period
    f = folds[0]
    first_test = int(f.test.min())
    early = [t for t in range(first_test - 24, first_test) if 0 <= labels.end[t] < first_test]
    assert early and set(early) <= set(f.val)
