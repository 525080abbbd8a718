"""Models selected by what the user gets (``select_by = "net_return"``): early stopping, boosting rounds
and the calibration chosen by the decision layer's net-of-cost return per unit of risk on the
validation span, on real BTC data with tiny real models; nothing is chosen on a test period."""

from __future__ import annotations

import numpy as np
import pytest

from bot.evaluation.edge_replay import EdgeReplayStrategy
from bot.evaluation.walkforward import WalkForwardConfig, walk_forward
from strategies.models.calibration import fit_calibrator, logit, sigmoid
from strategies.features.compute import DEFAULT_SPEC, compute_features
from strategies.features.history import History, load_history
from strategies.training.labels import model_labels
from strategies.models.spec import ModelSpec
from strategies.models.zoo import build_model
from strategies.training.selection import PriceSeries
from strategies.features.windows import Normalizer, Windows, valid_ends
from tests.conftest import DATA_DIR

SELECTED = [
    ModelSpec(name="gbm", kind="gbm", target="triple_barrier", horizon=6, window=24, gbm_max_iter=25,
              gbm_lags=(0, 1, 3), cost=0.001, select_by="net_return"),
    ModelSpec(name="lstm", kind="lstm", preset="small", target="triple_barrier", horizon=6, window=24, epochs=3,
              patience=3, hidden=(8,), dense=(8,), max_train_windows=1500, cost=0.001, select_by="net_return"),
]
CFG = WalkForwardConfig(min_train_days=120, retrain_every="30d", cache_dir=None, max_train_windows=1500)
DECISION = {"enter_margin": "validation", "cost": 0.001, "band": 0.0}


@pytest.fixture(scope="module")
def btc() -> History:
    return load_history(DATA_DIR, "BTC/USDT", "1h", "2019-01-01", "2019-07-15")


def _selected_margins(h: History, wf) -> dict[int, float]:
    a = h.arrays
    strat = EdgeReplayStrategy("chosen", h.symbol, h.timeframe, {m: wf.forecasts[m] for m in ("gbm", "lstm")},
                               {m: wf.validation[m] for m in ("gbm", "lstm")}, SELECTED[0], DECISION,
                               a["ts"], a["close"])
    return strat.selected


def test_selection_never_reads_the_test_span(btc: History) -> None:
    """Rewrite every candle from fold 0's first test bar on: fold 0's models (seen through their
    validation forecasts), calibrations and chosen entry level stay exactly the same."""
    base = walk_forward(btc, CFG, SELECTED, progress=False)
    t0 = int(base.folds[0]["test_from"])  # type: ignore[arg-type]
    later = btc.arrays["ts"] >= t0
    rng = np.random.default_rng(11)
    arrays = {k: v.copy() for k, v in btc.arrays.items()}
    f = np.exp(np.cumsum(rng.normal(0.0, 0.02, int(later.sum()))))  # a different future path
    for k in ("open", "high", "low", "close"):
        arrays[k][later] *= f
    other = walk_forward(History(btc.symbol, btc.timeframe, arrays), CFG, SELECTED, progress=False)
    assert base.folds[0] == other.folds[0]
    for name in ("gbm", "lstm"):
        v0, v1 = base.validation[name], other.validation[name]
        np.testing.assert_array_equal(v0.p[v0.fold == 0], v1.p[v1.fold == 0])
        f0, f1 = base.forecasts[name], other.forecasts[name]
        assert not np.array_equal(f0.p[f0.fold == 0], f1.p[f1.fold == 0])  # the test span did change
        # later folds train on the rewritten candles: their models differ, as they should
        assert not np.array_equal(v0.p[v0.fold == len(base.folds) - 1], v1.p[v1.fold == len(base.folds) - 1])
    assert _selected_margins(btc, base)[0] == _selected_margins(btc, other)[0]


def test_boosting_keeps_the_round_with_the_best_validation_net_return(btc: History) -> None:
    spec = SELECTED[0]
    feats = compute_features(btc.arrays, DEFAULT_SPEC)
    labels = model_labels(btc.arrays, spec, "1h")
    ends = valid_ends(feats, None, spec.window)
    ends = ends[np.isfinite(labels.y[ends]) & (labels.end[ends] >= 0)]
    tr, va = ends[:2500], ends[2600:3600]
    norm = Normalizer.fit(feats[: tr[-1] + 1])
    mk = lambda rows: Windows(feats, rows, labels.y[rows].astype(np.float32), spec.window)  # noqa: E731
    score = PriceSeries.of(btc.arrays, "1h").score(spec, va, labels.y[va])
    chosen = build_model(spec, feats.shape[1], norm)
    report = chosen.fit(mk(tr), mk(va), select=score)
    full = build_model(spec.model_copy(update={"select_by": "log_loss"}), feats.shape[1], norm)
    full.fit(mk(tr), mk(va))
    xv = full._tabular(mk(va).with_features(norm.transform(feats)).x())
    staged = [score.of_logits(logit(np.clip(p[:, 1], 1e-7, 1 - 1e-7))) for p in
              full._make(spec.gbm_max_iter).fit(*_train_xy(full, mk(tr), norm)).staged_predict_proba(xv)]
    assert report.best_epoch == int(np.argmax(np.round(staged, 9))) + 1
    assert report.extra["val_net_sharpe"] == pytest.approx(max(staged))
    assert len(set(np.round(staged, 6))) > 3, "the rounds must differ in what they earn"


def _train_xy(model, w: Windows, norm: Normalizer) -> tuple[np.ndarray, np.ndarray]:
    """The training matrix exactly as GBMModel.fit builds it (stride, weights, class balance)."""
    tr = w.subset(slice(None, None, model.spec.stride))
    x = model._tabular(tr.with_features(norm.transform(tr.features)).x())
    return model._undersample(x, tr.y.astype(np.float64))


def test_the_calibration_is_chosen_on_halves_it_was_not_fitted_on(btc: History) -> None:
    rng = np.random.default_rng(5)
    n = 1200
    rows = np.arange(400, 400 + n)
    spec = SELECTED[0]
    y = (rng.random(n) < 0.5).astype(np.float64)
    z = rng.normal(0.0, 1.0, n) + 0.8 * (y - 0.5)
    score = PriceSeries.of(btc.arrays, "1h").score(spec, rows, y)
    best, scores = score.choose_calibration(z)
    assert set(scores) == {"temperature", "isotonic", "none"} and scores[best] == max(scores.values())
    assert scores["none"] == pytest.approx(score.of_probabilities(sigmoid(z)))
    h = n // 2
    iso = np.concatenate([fit_calibrator("isotonic", z[h:], y[h:])(z[:h]),
                          fit_calibrator("isotonic", z[:h], y[:h])(z[h:])])
    assert scores["isotonic"] == pytest.approx(score.of_probabilities(iso))
    in_sample = score.of_probabilities(fit_calibrator("isotonic", z, y)(z))
    assert in_sample != pytest.approx(scores["isotonic"])  # what choosing in sample would have seen


def test_net_return_selection_needs_a_forecast_of_the_direction() -> None:
    with pytest.raises(ValueError, match="select_by"):
        ModelSpec(name="m", kind="gbm", target="meta_trend", select_by="net_return")


def test_neuralbot_train_selects_the_same_way(btc: History) -> None:
    """What is trained for live trading is selected as walk-forward evaluates it."""
    from strategies.training.pipeline import Dataset, train_model

    ds = Dataset.build(btc, DEFAULT_SPEC)
    res = train_model(SELECTED[0], ds)
    plain = train_model(SELECTED[0].model_copy(update={"select_by": "log_loss"}), ds)
    assert "val_net_sharpe" in res.report.extra and "val_net_sharpe" not in plain.report.extra
    assert res.model.calibrator.kind in ("temperature", "isotonic", "none")


def test_the_daemon_retrain_candidate_is_selected_the_same_way(btc: History) -> None:
    """fit_candidate used to early-stop by log loss whatever the spec said."""
    from bot.ops.retrain_job import fit_candidate
    from strategies.training.pipeline import Dataset

    ds = Dataset.build(btc, DEFAULT_SPEC)
    chosen = fit_candidate(SELECTED[0], ds)
    plain = fit_candidate(SELECTED[0].model_copy(update={"select_by": "log_loss"}), ds)
    assert chosen.estimator.n_iter_ != plain.estimator.n_iter_ or chosen.calibrator != plain.calibrator
