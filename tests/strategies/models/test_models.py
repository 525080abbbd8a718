"""Every architecture learns a planted pattern and stays at chance on noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from strategies.training.classification import accuracy
from strategies.models.spec import ModelSpec
from strategies.models.torch_base import TorchModel
from strategies.models.zoo import build_model
from strategies.training.synthetic import noise_features, planted_features
from strategies.features.windows import Normalizer, Windows, chronological_split

torch.set_num_threads(1)  # tiny models: intra-op threads only add contention

WINDOW = 12
N_FEATURES = 5
TINY = dict(window=WINDOW, epochs=25, patience=5, batch_size=64, lr=1e-2, stride=1, dropout=0.0,
            weight_decay=0.0, seed=0)

SPECS = {
    "lstm": ModelSpec(name="lstm", kind="lstm", hidden=(16,), dense=(8,), **TINY),
    "bilstm": ModelSpec(name="bilstm", kind="lstm", hidden=(12, 8), dense=(8,), bidirectional=True, **TINY),
    "cnn_lstm": ModelSpec(name="cnn_lstm", kind="cnn_lstm", conv_channels=(8,), hidden=(16,), dense=(8,), **TINY),
    "transformer": ModelSpec(name="transformer", kind="transformer", d_model=16, n_heads=2, n_layers=1,
                             ff_dim=32, dense=(8,), **TINY),
    "gbm": ModelSpec(name="gbm", kind="gbm", gbm_max_iter=150, gbm_learning_rate=0.1, **TINY),
}


def fit_eval(spec: ModelSpec, w: Windows) -> tuple[float, float]:
    split = chronological_split(w.end, purge=1)
    part = lambda ends: w.subset(np.searchsorted(w.end, ends))  # noqa: E731
    tr, va, te = part(split.train), part(split.val), part(split.test)
    lo, hi = split.train_rows
    model = build_model(spec, N_FEATURES, Normalizer.fit(w.features[lo - WINDOW + 1 : hi + 1]))
    model.fit(tr, va)
    model.calibrate(va)
    return accuracy(tr.y, model.predict_windows(tr)), accuracy(te.y, model.predict_windows(te))


@pytest.mark.parametrize("kind", list(SPECS))
def test_learns_planted_pattern(kind: str) -> None:
    _, test_acc = fit_eval(SPECS[kind], planted_features(2500, N_FEATURES, WINDOW, lag=3, seed=1))
    assert test_acc > 0.9, f"{kind}: test accuracy {test_acc:.3f}"


@pytest.mark.parametrize("kind", list(SPECS))
def test_chance_on_noise(kind: str) -> None:
    _, test_acc = fit_eval(SPECS[kind], noise_features(2500, N_FEATURES, WINDOW, seed=2))
    assert 0.42 < test_acc < 0.58, f"{kind}: test accuracy {test_acc:.3f} on pure noise"


def test_regression_head_and_shapes() -> None:
    spec = ModelSpec(name="vol", kind="lstm", target="realized_vol", horizon=24, hidden=(8,), dense=(),
                     window=WINDOW, epochs=2, stride=1, calibration="none")
    w = planted_features(600, N_FEATURES, WINDOW)
    w = Windows(w.features, w.end, (np.abs(w.features[w.end, 0]) * 0.01).astype(np.float32), WINDOW)
    model = build_model(spec, N_FEATURES)
    model.fit(w.subset(slice(0, 400)), w.subset(slice(400, None)))
    pred = model.predict(w.x(slice(0, 7)))
    assert pred.shape == (7,) and model.task == "regression"
    assert abs(float(np.mean(pred)) - float(np.mean(w.y))) < 0.01
    with pytest.raises(ValueError, match="expected windows"):
        model.predict(np.zeros((2, WINDOW + 1, N_FEATURES)))


@pytest.mark.parametrize("kind", ["lstm", "cnn_lstm", "transformer"])
def test_torch_differentiable_interface(kind: str) -> None:
    model = build_model(SPECS[kind].model_copy(update={"epochs": 1}), N_FEATURES,
                        Normalizer(np.full(N_FEATURES, 0.5), np.full(N_FEATURES, 2.0)))
    assert isinstance(model, TorchModel) and isinstance(model.module, torch.nn.Module)
    x = np.random.default_rng(0).normal(size=(3, WINDOW, N_FEATURES))
    xt = torch.tensor(x, requires_grad=True)
    p = model.forward_proba(xt)
    p.sum().backward()
    assert xt.grad is not None and xt.grad.shape == xt.shape and torch.isfinite(xt.grad).all()
    np.testing.assert_allclose(p.detach().numpy(), model.predict(x), rtol=1e-5, atol=1e-6)


def test_batched_equals_single() -> None:
    model = build_model(SPECS["lstm"], N_FEATURES)
    w = planted_features(200, N_FEATURES, WINDOW)
    batched = model.predict_windows(w)
    single = np.array([model.predict(w.x(slice(i, i + 1)))[0] for i in range(0, len(w), 37)])
    np.testing.assert_allclose(batched[::37], single, rtol=1e-5, atol=1e-6)


def test_article_preset() -> None:
    spec = ModelSpec(name="a", kind="lstm", preset="article")
    assert (spec.window, spec.hidden, spec.dropout, spec.dense) == (100, (128, 64), 0.3, (32,))
    net = build_model(spec, 17).module
    assert [m.hidden_size for m in net.lstms] == [128, 64]  # type: ignore[union-attr]
    override = ModelSpec(name="a", kind="lstm", preset="article", epochs=3)
    assert override.epochs == 3 and override.hidden == (128, 64)
    with pytest.raises(ValueError):
        ModelSpec(name="x", kind="lstm", preset="nope")
    with pytest.raises(ValueError):
        ModelSpec(name="x", kind="lstm", bogus=1)
