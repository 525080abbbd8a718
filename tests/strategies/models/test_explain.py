"""Explanations: integrated-gradients completeness on real (tiny, trained) networks, GBM occlusion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from strategies.models.explain import (
    attributions,
    integrated_gradients,
    model_baseline,
    occlusion_attributions,
    permutation_importance,
    shares,
    top_shares,
)
from bot.cli.ops import format_attributions
from strategies.features.compute import DEFAULT_SPEC, compute_features
from strategies.models.registry import load_model, model_dir
from strategies.features.windows import Windows, valid_ends
from tests.strategies.test_helpers import SYMBOL, history, tiny_models_dir

TORCH_MODELS = ("lstm", "lstm_b", "cnn_lstm", "transformer")


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    """Real raw feature windows from a period after the training data (24 steps)."""
    feats = compute_features(history("2020-10-01", "2020-11-01").arrays, DEFAULT_SPEC)
    ends = valid_ends(feats, None, 24)[-40::8]
    return np.stack([feats[e - 23 : e + 1] for e in ends])


def _load(name: str):
    return load_model(model_dir(tiny_models_dir(), SYMBOL, "1h", name), DEFAULT_SPEC)


@pytest.mark.parametrize("name", TORCH_MODELS, ids=TORCH_MODELS)
def test_integrated_gradients_completeness(name: str, windows: np.ndarray) -> None:
    """Attributions sum to f(x) - f(baseline).

    The quadrature error scales with how much P(up) wiggles along the straight path
    (ReLU kinks, float32 arithmetic), not with the net change, so the tolerance is 1%
    of the path's total variation (measured on a 1,000-point grid) plus 1e-5.
    """
    model = _load(name)
    base = model_baseline(model)

    def f(z: torch.Tensor) -> torch.Tensor:
        return model.forward_proba(z.float()).double()

    for x in windows:
        with torch.enable_grad():
            ig = integrated_gradients(f, x, base, steps=256)
        alphas = torch.linspace(0.0, 1.0, 1001, dtype=torch.float64).reshape(-1, 1, 1)
        with torch.no_grad():
            path = f(torch.as_tensor(base) + alphas * torch.as_tensor(x - base)).numpy()
        delta = float(path[-1] - path[0])
        variation = float(np.abs(np.diff(path)).sum())
        assert ig.shape == x.shape
        assert float(ig.sum()) == pytest.approx(delta, abs=1e-5 + 0.01 * variation)
        # forward_proba is the model's own calibrated probability
        assert float(path[-1]) == pytest.approx(float(model.predict(x)[0]), abs=1e-5)


def test_integrated_gradients_exact_for_a_quadratic() -> None:
    w = torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64)

    def f(z: torch.Tensor) -> torch.Tensor:
        return ((z * w) ** 2).sum(dim=(1, 2)) + (z * w).sum(dim=(1, 2))

    x = np.array([[0.3, -1.2], [2.0, 0.7]])
    ig = integrated_gradients(f, x, np.zeros_like(x), steps=4)  # Gauss-Legendre: exact for polynomials
    xt = torch.as_tensor(x)[None]
    assert float(ig.sum()) == pytest.approx(float(f(xt) - f(torch.zeros_like(xt))), rel=1e-12)
    np.testing.assert_allclose(ig, (w.numpy() * x) ** 2 + w.numpy() * x, rtol=1e-12)


def test_gbm_occlusion_and_dispatch(windows: np.ndarray) -> None:
    gbm = _load("gbm")
    x = windows[0]
    occ = occlusion_attributions(gbm, x)
    assert occ.shape == (DEFAULT_SPEC.n_features,)
    # occluding feature j means: prediction with feature j at its baseline
    j = int(np.argmax(np.abs(occ)))
    xj = x.copy()
    xj[:, j] = model_baseline(gbm)[:, j]
    assert occ[j] == pytest.approx(gbm.predict(x)[0] - gbm.predict(xj)[0])
    np.testing.assert_allclose(attributions(gbm, x), occ)
    lstm = _load("lstm")
    assert attributions(lstm, x, steps=16).shape == (DEFAULT_SPEC.n_features,)


def test_permutation_importance_finds_the_informative_feature() -> None:
    gbm = _load("gbm")
    h = history("2020-10-01", "2020-12-01")
    feats = compute_features(h.arrays, DEFAULT_SPEC)
    ends = valid_ends(feats, None, gbm.window)
    # Labels the model itself produces: the importance must point at features it actually uses.
    w0 = Windows(feats, ends, np.zeros(len(ends), dtype=np.float32), gbm.window)
    y = (gbm.predict_windows(w0) > 0.5).astype(np.float32)
    imp = permutation_importance(gbm, Windows(feats, ends, y, gbm.window), n_repeats=1, max_windows=400)
    assert imp.shape == (DEFAULT_SPEC.n_features,)
    assert imp.max() > 0
    used = {DEFAULT_SPEC.columns[i] for i in np.flatnonzero(imp > 0)}
    assert used  # some features matter; an all-zero importance would mean the tool is broken


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([2.0, -1.0, 1.0], {"a": 0.5, "b": -0.25, "c": 0.25}, id="signed-shares"),
        pytest.param([0.0, 0.0, 0.0], {"a": 0.0, "b": 0.0, "c": 0.0}, id="all-zero"),
    ],
)
def test_shares(values, expected) -> None:
    assert shares(np.array(values), ("a", "b", "c")) == pytest.approx(expected)


def test_top_shares_and_format() -> None:
    top = top_shares(np.array([0.1, -0.5, 0.3, 0.1]), ("a", "b", "c", "d"), k=2)
    assert list(top) == ["b", "c"] and top["b"] == pytest.approx(-0.5)
    assert format_attributions(top) == "b -50%, c +30%"
