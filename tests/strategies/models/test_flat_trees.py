"""The flattened trees predict exactly what scikit-learn predicts: raw values, staged raw
values and probabilities bit for bit, NaN and infinities included, split thresholds hit
exactly; and a GBM model fitted on real BTC data gives the same forecasts and picks the
same boosting round as through scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import expit
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from strategies.features.compute import DEFAULT_SPEC, compute_features
from strategies.features.history import load_history
from strategies.features.windows import Normalizer, Windows, valid_ends
from strategies.models.calibration import logit
from strategies.models.flat_trees import FlatTrees
from strategies.models.gbm import GBMModel
from strategies.models.spec import ModelSpec
from strategies.models.zoo import build_model
from strategies.training.labels import model_labels
from tests.conftest import DATA_DIR

N_FEATURES = 4
special = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300, -1e300, 5e-324])


def _data(seed: int, n: int, nan_share: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES))
    x[:, 1] = np.round(x[:, 1])  # few distinct values: thresholds land on the data itself
    x[rng.random(x.shape) < nan_share] = np.nan
    signal = np.nan_to_num(x[:, 0]) - np.nan_to_num(x[:, 2], nan=1.0) + np.isnan(x[:, 3])
    return x, signal + rng.normal(scale=0.5, size=n)


def _queries(est: object, seed: int, drawn: np.ndarray) -> np.ndarray:
    """Random rows, the drawn ones, and rows sitting exactly on (and next to) each split threshold."""
    rng = np.random.default_rng(seed + 1)
    nodes = np.concatenate([p[0].nodes for p in est._predictors])  # type: ignore[attr-defined]
    split = nodes[nodes["is_leaf"] == 0]
    on = np.tile(rng.normal(size=N_FEATURES), (3 * len(split), 1))
    for i, node in enumerate(split):
        t = node["num_threshold"]
        for j, v in enumerate((t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf))):
            on[3 * i + j, node["feature_idx"]] = v
    return np.concatenate([rng.normal(size=(64, N_FEATURES)) * 2, drawn, on])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), n=st.integers(40, 300), nan_share=st.sampled_from([0.0, 0.05, 0.3]),
       leaves=st.integers(2, 31), rounds=st.integers(1, 40), regression=st.booleans(),
       drawn=hnp.arrays(np.float64, st.tuples(st.integers(0, 8), st.just(N_FEATURES)),
                        elements=st.floats(allow_nan=True, allow_infinity=True) | special))
def test_same_raw_values_and_probabilities_as_scikit_learn(seed: int, n: int, nan_share: float, leaves: int,
                                                           rounds: int, regression: bool,
                                                           drawn: np.ndarray) -> None:
    x, target = _data(seed, n, nan_share)
    kw = dict(max_iter=rounds, max_leaf_nodes=leaves, min_samples_leaf=5, early_stopping=False, random_state=0)
    if regression:
        est = HistGradientBoostingRegressor(**kw).fit(x, target)
    else:
        est = HistGradientBoostingClassifier(**kw).fit(x, (target > 0).astype(int))
    trees = FlatTrees.of(est)
    q = _queries(est, seed, drawn)
    raw = trees.raw(q)
    np.testing.assert_array_equal(raw, est._raw_predict(q)[:, 0])
    if regression:
        np.testing.assert_array_equal(raw, est.predict(q))
        stages = list(est.staged_predict(q))
    else:
        np.testing.assert_array_equal(expit(raw), est.predict_proba(q)[:, 1])
        stages = [p[:, 1] for p in est.staged_predict_proba(q)]
    staged = trees.staged_raw(q)
    assert staged.shape == (len(q), len(stages))
    for i, want in enumerate(stages):
        np.testing.assert_array_equal(staged[:, i] if regression else expit(staged[:, i]), want)


def test_rows_beyond_one_block_and_float32_inputs() -> None:
    x, target = _data(3, 2000, 0.1)
    est = HistGradientBoostingClassifier(max_iter=30, early_stopping=False, random_state=0).fit(x, target > 0)
    q = x.astype(np.float32)  # scikit-learn converts to float64 the same way
    np.testing.assert_array_equal(FlatTrees.of(est).raw(q), est._raw_predict(q)[:, 0])


def test_rejects_what_it_cannot_predict() -> None:
    x, target = _data(4, 300, 0.0)
    three = np.digitize(target, [-0.5, 0.5])
    with pytest.raises(ValueError, match="trees per iteration"):
        FlatTrees.of(HistGradientBoostingClassifier(max_iter=3).fit(x, three))
    cat = HistGradientBoostingClassifier(max_iter=3, categorical_features=[1]).fit(np.abs(x), target > 0)
    with pytest.raises(ValueError, match="categorical"):
        FlatTrees.of(cat)
    trees = FlatTrees.of(HistGradientBoostingClassifier(max_iter=3).fit(x, target > 0))
    with pytest.raises(ValueError, match="expected rows"):
        trees.raw(x[:, :3])


def test_unfitted_model_says_so() -> None:
    model = build_model(ModelSpec(name="gbm", kind="gbm", window=12), N_FEATURES)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict(np.zeros((12, N_FEATURES)))


@pytest.fixture(scope="module")
def fitted_on_btc() -> tuple[GBMModel, Windows, Windows]:
    h = load_history(DATA_DIR, "BTC/USDT", "1h", "2019-01-01", "2019-07-15")
    spec = ModelSpec(name="gbm", kind="gbm", target="triple_barrier", horizon=6, window=24, gbm_max_iter=60)
    feats = compute_features(h.arrays, DEFAULT_SPEC)
    labels = model_labels(h.arrays, spec, "1h")
    ends = valid_ends(feats, None, spec.window)
    ends = ends[np.isfinite(labels.y[ends]) & (labels.end[ends] >= 0)]
    mk = lambda rows: Windows(feats, rows, labels.y[rows].astype(np.float32), spec.window)  # noqa: E731
    train, val = mk(ends[:2500]), mk(ends[2600:3600])
    model = build_model(spec, feats.shape[1], Normalizer.fit(feats[: ends[2499] + 1]))
    assert isinstance(model, GBMModel)
    model.fit(train, val)
    model.calibrate(val)
    return model, train, val


def _through_scikit_learn(model: GBMModel, windows: np.ndarray) -> np.ndarray:
    """The forecasts as GBMModel computed them before the trees were flattened."""
    xt = model._tabular(model.normalizer.transform(windows))
    return model._finish(logit(model.estimator.predict_proba(xt)[:, 1]))


def test_real_data_forecasts_identical_to_scikit_learn(fitted_on_btc: tuple[GBMModel, Windows, Windows]) -> None:
    model, _, val = fitted_on_btc
    windows = val.x()
    np.testing.assert_array_equal(model.predict_windows(val), _through_scikit_learn(model, windows))
    for i in (0, 17, len(windows) - 1):  # one live window at a time
        np.testing.assert_array_equal(model.predict(windows[i]), _through_scikit_learn(model, windows[i:i + 1]))


def test_real_data_boosting_rounds_scored_as_by_scikit_learn(
        fitted_on_btc: tuple[GBMModel, Windows, Windows]) -> None:
    """Every round's validation log loss (which picks the round kept) is scikit-learn's staged one."""
    model, train, val = fitted_on_btc
    tr = train.subset(slice(None, None, model.spec.stride))  # the rows GBMModel.fit trains on
    xt = model._tabular(tr.with_features(model.normalizer.transform(tr.features)).x())
    xt, yt = model._undersample(xt, tr.y.astype(np.float64)) if model.spec.class_balance else (xt, tr.y)
    xv = model._tabular(val.with_features(model.normalizer.transform(val.features)).x())
    y = val.y.astype(np.float64)
    losses = []
    for p in model._make(model.spec.gbm_max_iter).fit(xt, yt).staged_predict_proba(xv):
        q = np.clip(p[:, 1], 1e-7, 1 - 1e-7)
        losses.append(float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q))))
    report = model.fit(train, val)
    assert report.val_loss == tuple(losses)
    assert model.estimator.n_iter_ == int(np.argmin(losses)) + 1
