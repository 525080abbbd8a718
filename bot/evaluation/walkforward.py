"""Walk-forward evaluation: train on the past, forecast the next period, retrain, roll on.

The reference article's procedure: train on the first years, test on the next
quarter, retrain including that quarter, test on the following one, and so on.
:class:`WalkForwardConfig` holds the schedule; ``retrain_every`` is the same
cadence the live daemon retrains on (one setting for both).

Leakage rules, asserted by :func:`check_fold`:

* a fold trains (and early-stops / calibrates) only on windows whose label is
  known before the fold's first test bar: the row that resolves the label (``t +
  horizon``, or a triple-barrier label's first touch: its real span) comes before
  the first test row; the last ``val_fraction`` of those is the validation split,
  and a training label must also resolve before it starts;
* multi-bar labels are weighted by average uniqueness (``ModelSpec.sample_weights``);
* normalisation statistics are fitted on the rows the training windows read;
* features are causal (computed bar by bar), so computing them once over the
  whole history leaks nothing.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import structlog
import torch
from threadpoolctl import threadpool_limits

from bot.evaluation.compute import Compute, ComputeConfig
from bot.evaluation.cpcv import cpcv_paths, cpcv_splits, group_bounds
from bot.evaluation.schedule import DAY_MS, WalkForwardConfig, period_starts
from bot.core.events import timeframe_ms
from strategies.features.compute import FeatureSpec, compute_features, get_spec
from strategies.features.history import History
from strategies.training.selection import PriceSeries
from strategies.features.windows import Normalizer, Windows, valid_ends
from strategies.models.base import Model
from strategies.models.spec import ModelSpec, default_models
from strategies.models.zoo import build_model
from strategies.training.labels import Labels, model_labels, uniqueness_weights

log = structlog.get_logger(__name__)

@dataclass(frozen=True, slots=True)
class Fold:
    index: int
    train: np.ndarray  # window-end rows fitted on
    val: np.ndarray  # window-end rows for early stopping / calibration
    test: np.ndarray  # window-end rows forecast (out of sample)
    test_start_ts: int
    test_end_ts: int
    groups: tuple[int, ...] = ()  # CPCV: the groups this split tests (walk-forward: none)

    def describe(self, ts: np.ndarray) -> dict[str, object]:
        out: dict[str, object] = {
            "fold": self.index, "train_from": int(ts[self.train[0]]), "train_to": int(ts[self.val[-1]]),
            "test_from": self.test_start_ts, "test_to": self.test_end_ts,
            "n_train": len(self.train), "n_val": len(self.val), "n_test": len(self.test),
        }
        if self.groups:
            out["test_groups"] = list(self.groups)
        return out


# A path: (fold index, first row, end row) segments; its forecasts are each fold's on its rows.
SplitPath = list[tuple[int, int, int]]


class ScheduleError(ValueError):
    """The configured splitter cannot cut this history (e.g. too many CPCV groups for its length)."""


@dataclass(frozen=True, slots=True)
class Schedule:
    folds: list[Fold]
    paths: list[SplitPath]  # walk-forward: one (each fold on its test period); CPCV: C(N-1, k-1)
    group_rows: list[tuple[int, int]] = field(default_factory=list)  # CPCV: [first, end) row per group


def make_folds(
    ts: np.ndarray, ends: np.ndarray, cfg: WalkForwardConfig, horizon: int = 1,
    label_end: np.ndarray | None = None,
) -> list[Fold]:
    """Folds over window-end rows ``ends`` (rows with a full valid window) of times ``ts``.

    ``label_end`` (per row: the row that resolves its label; default ``row + horizon``)
    purges by each label's real span: a window is fitted on only if its label resolves
    before the fold's first test row (and, for training, before the validation split)."""
    ts = np.asarray(ts, dtype=np.int64)
    ends = np.asarray(ends, dtype=np.int64)
    if label_end is None:
        label_end = np.arange(len(ts), dtype=np.int64) + horizon
    res = np.where(label_end < 0, np.iinfo(np.int64).max, label_end)  # unknown: never fitted
    if len(ends) == 0:
        return []
    bounds = period_starts(int(ts[0]), int(ts[-1]), cfg.retrain_every, cfg.min_train_days)
    folds: list[Fold] = []
    for i, lo_ms in enumerate(bounds):
        hi_ms = bounds[i + 1] if i + 1 < len(bounds) else int(ts[-1]) + 1
        test = ends[(ts[ends] >= lo_ms) & (ts[ends] < hi_ms)]
        if len(test) == 0:
            continue
        first_test_row = int(np.searchsorted(ts, lo_ms))
        eligible = ends[res[ends] < first_test_row]
        if cfg.max_train_days is not None:
            eligible = eligible[ts[eligible] >= lo_ms - cfg.max_train_days * DAY_MS]
        if len(eligible) < 50:
            continue
        cut = int(eligible[int(len(eligible) * (1 - cfg.val_fraction))])
        train = eligible[res[eligible] < cut]
        val = eligible[eligible >= cut]
        if len(train) < 20 or len(val) < 10:
            continue
        folds.append(Fold(len(folds), train, val, test, lo_ms, hi_ms))
    return folds


def check_fold(fold: Fold, horizon: int, window: int, label_end: np.ndarray | None = None) -> None:
    """Raise if a fold could have seen its test period (labels or inputs)."""
    first_test = int(fold.test.min())
    fitted = np.concatenate([fold.train, fold.val])
    end = (lambda rows: rows + horizon) if label_end is None else (lambda rows: label_end[rows])
    if int(end(fitted).max()) >= first_test or int(end(fitted).min()) < 0:
        raise AssertionError(f"fold {fold.index}: a training label reads a test row")
    if int(end(fold.train).max()) >= int(fold.val.min()):
        raise AssertionError(f"fold {fold.index}: a training label reads a validation row")
    if np.intersect1d(fitted, fold.test).size:
        raise AssertionError(f"fold {fold.index}: train and test share rows")


def make_cpcv_folds(ts: np.ndarray, ends: np.ndarray, cfg: WalkForwardConfig, label_end: np.ndarray,
                    embargo: int) -> Schedule:
    """Combinatorial purged CV over window-end rows ``ends``: ``cfg.cpcv_groups`` contiguous groups,
    every choice of ``cfg.cpcv_test_groups`` of them one split, its test rows forecast by a model
    fitted on the rest, purged by each label's real span (``label_end``: the row that resolves it;
    < 0 unknown, never fitted) and embargoed ``embargo`` rows after each test group's labels end.
    The tail of the remaining rows is the validation split (a training label resolves before it)."""
    ends = np.asarray(ends, dtype=np.int64)
    n = len(ends)
    if n < 2 * cfg.cpcv_groups:
        return Schedule([], [])
    known = label_end[ends] >= 0
    # in observation (window-end) units: the last observation whose row a label reads
    span = np.where(known, label_end[ends], ends)
    obs_end = np.maximum(np.searchsorted(ends, span, side="right") - 1, np.arange(n))
    # `embargo` observations cover `embargo` rows even across gaps in `ends` (never fewer rows)
    splits = cpcv_splits(n, cfg.cpcv_groups, cfg.cpcv_test_groups, obs_end, embargo)
    bounds = group_bounds(n, cfg.cpcv_groups)
    folds = []
    for sp in splits:
        eligible = ends[sp.train[known[sp.train]]]
        cut = int(eligible[int(len(eligible) * (1 - cfg.val_fraction))]) if len(eligible) else 0
        train, val = eligible[label_end[eligible] < cut], eligible[eligible >= cut]
        if len(train) < 20 or len(val) < 10:
            raise ScheduleError(f"walkforward: cpcv split {sp.index} leaves {len(train)} training and "
                             f"{len(val)} validation rows; use fewer cpcv_groups or more history")
        test = ends[sp.test]
        folds.append(Fold(sp.index, train, val, test, int(ts[test[0]]), int(ts[test[-1]]) + 1, sp.test_groups))
    group_rows = [(int(ends[lo]), int(ends[hi - 1]) + 1) for lo, hi in bounds]
    paths = [[(k, *group_rows[g]) for g, k in path] for path in cpcv_paths(splits, cfg.cpcv_groups)]
    return Schedule(folds, paths, group_rows)


def check_cpcv_fold(fold: Fold, label_end: np.ndarray, group_rows: list[tuple[int, int]], embargo: int) -> None:
    """Raise if a CPCV split fits on a row whose label span overlaps a test group's labels (or their
    embargo), on a row with an unknown label, or on a test row."""
    fitted = np.concatenate([fold.train, fold.val])
    end = label_end[fitted]
    if np.any(end < 0):
        raise AssertionError(f"split {fold.index}: fitted on a row with an unknown label")
    for g in fold.groups:
        lo, hi = group_rows[g]
        rows = fold.test[(fold.test >= lo) & (fold.test < hi)]
        reach = int(np.max(np.where(label_end[rows] >= 0, label_end[rows], rows))) + embargo
        if np.any((fitted <= reach) & (end >= lo)):
            raise AssertionError(f"split {fold.index}: a fitted label overlaps test group {g} or its embargo")
    if int(label_end[fold.train].max()) >= int(fold.val.min()):
        raise AssertionError(f"split {fold.index}: a training label reads a validation row")


@dataclass
class Forecasts:
    """Out-of-sample forecasts of one model over all folds, in time order."""

    name: str
    ts: np.ndarray  # open time of the decision bar (ms)
    p: np.ndarray  # calibrated P(up)
    y: np.ndarray  # realised direction (NaN at the very end)
    fold: np.ndarray  # fold index of each forecast


@dataclass
class WalkForwardResult:
    symbol: str
    timeframe: str
    folds: list[dict[str, object]]
    forecasts: dict[str, Forecasts]  # by model name (plus "ensemble")
    seconds: float = 0.0
    # per model: its forecasts of each fold's validation span (after calibration on it)
    validation: dict[str, Forecasts] = field(default_factory=dict)
    # CPCV: the forecasts along every path (``forecasts`` is path 0); walk-forward: none
    paths: list[dict[str, Forecasts]] = field(default_factory=list)

    @property
    def oos_start_ts(self) -> int:
        return int(self.folds[0]["test_from"]) if self.folds else 0  # type: ignore[arg-type]


def prepare_specs(cfg: WalkForwardConfig, models: Sequence[ModelSpec] | None) -> list[ModelSpec]:
    """Direction classifiers to walk forward, with the config's speed overrides applied."""
    out = []
    for spec in models or default_models():
        if spec.task != "classification":
            continue
        update: dict[str, object] = {}
        if cfg.max_train_windows is not None:
            update["max_train_windows"] = min(spec.max_train_windows or 10**9, cfg.max_train_windows)
        if cfg.epochs is not None:
            update["epochs"] = cfg.epochs
        out.append(spec.model_copy(update=update) if update else spec)
    return out


def fit_windows(spec: ModelSpec, features: np.ndarray, labels: Labels, ts: np.ndarray,
                train: np.ndarray, val: np.ndarray, prices: PriceSeries | None = None,
                unseen: np.ndarray | None = None) -> Model:
    """Fit ``spec`` on the windows ending at rows ``train``; early-stop and calibrate on ``val``.

    Normalisation statistics come from the rows the training windows read, less the rows
    ``unseen`` (a CPCV split's test rows, which lie between its training rows); rows without
    a label (meta-labels exist only on primary signals) are skipped; overlapping
    multi-bar labels are weighted by their average uniqueness when the spec says so.
    With ``spec.select_by = "net_return"`` (and the history's ``prices``) early stopping and
    the calibration are chosen by the net-of-cost return per unit of risk of the validation
    forecasts (:class:`strategies.training.selection.NetScore`): ``val``'s rows, never a later one.
    """
    w, y = spec.window, labels.y
    lo, hi = int(train[0]), int(train[-1])
    read = features[lo - w + 1 : hi + 1]
    if unseen is not None:
        read = read[~np.isin(np.arange(lo - w + 1, hi + 1), unseen)]
    normalizer = Normalizer.fit(read)
    np.random.seed(spec.seed)
    torch.manual_seed(spec.seed)
    model = build_model(spec, features.shape[1], normalizer)
    labelled = lambda rows: rows[np.isfinite(y[rows])]
    tr_rows, val_rows = labelled(train), labelled(val)
    fit_on = _windows(spec, features, y, ts, tr_rows)
    if spec.weighted:
        fit_on = fit_on.with_weights(uniqueness_weights(tr_rows, labels.end[tr_rows]))
    val_on = _windows(spec, features, y, ts, val_rows)
    select = prices.score(spec, val_rows, y[val_rows]) if prices is not None and spec.select_by == "net_return" \
        else None
    model.fit(fit_on, val_on, select=select)
    model.calibrate(val_on, select)
    return model


def _windows(spec: ModelSpec, features: np.ndarray, y: np.ndarray, ts: np.ndarray, rows: np.ndarray) -> Windows:
    return Windows(features, rows, y[rows].astype(np.float32), spec.window, ts[rows])


def fit_fold(spec: ModelSpec, features: np.ndarray, labels: Labels, ts: np.ndarray,
             fold: Fold, prices: PriceSeries | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``spec`` on the fold's training windows; return P(up) for its test windows and for its
    validation windows (every one of them, labelled or not: what decision settings are chosen on)."""
    model = fit_windows(spec, features, labels, ts, fold.train, fold.val, prices,
                        fold.test if fold.groups else None)
    y = labels.y
    return (model.predict_windows(_windows(spec, features, y, ts, fold.test)),
            model.predict_windows(_windows(spec, features, y, ts, fold.val)))


def _fit_task(spec: ModelSpec, features: np.ndarray, labels: Labels, ts: np.ndarray, fold: Fold,
              threads: int, prices: PriceSeries | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One (model, fold) fit as a self-contained task (runs the same in a Ray worker)."""
    torch.set_num_threads(threads)
    with threadpool_limits(threads):  # OpenMP/BLAS (scikit-learn) as well as torch
        return fit_fold(spec, features, labels, ts, fold, prices)


def walk_forward(
    history: History,
    cfg: WalkForwardConfig,
    models: Sequence[ModelSpec] | None = None,
    feature_spec: FeatureSpec | None = None,
    progress: bool = True,
    compute: Compute | None = None,
    peer: History | None = None,
) -> WalkForwardResult:
    """Train every model fold by fold and collect out-of-sample forecasts (+ their mean).

    ``peer``: the peer symbol's history, for models whose feature spec has cross-asset inputs.

    The (model, fold) fits are independent tasks: serial by default, Ray tasks with a
    Ray ``compute``; the forecasts are the same either way (each fit seeds itself).
    """

    t0 = time.perf_counter()
    torch.set_num_threads(cfg.threads)
    runner = compute or Compute(ComputeConfig(), progress=progress)
    specs = prepare_specs(cfg, models)
    arrays = history.arrays
    ts = np.asarray(arrays["ts"], dtype=np.int64)
    feats: dict[str, np.ndarray] = {}
    validation: dict[str, Forecasts] = {}
    # one common fold schedule: rows where every model has a full window
    max_window = max((s.window for s in specs), default=2)
    horizon = max((s.horizon for s in specs), default=1)
    spec0 = feature_spec or get_spec(specs[0].features if specs else "default")
    peer_arrays = peer.arrays if peer is not None else None
    f0 = feats.setdefault(spec0.name, compute_features(arrays, spec0, peer=peer_arrays))
    ends = valid_ends(f0, None, max_window)
    labels = {s.name: model_labels(arrays, s, history.timeframe) for s in specs}
    sched = plan_folds(ts, ends, labels, cfg, horizon, max_window, history.timeframe)
    folds = sched.folds
    fold_meta = [fold.describe(ts) for fold in folds]
    jobs: list[tuple[object, ...]] = []
    shared: dict[str, object] = {}
    shared_ts = runner.share(ts)
    prices = runner.share(PriceSeries.of(arrays, history.timeframe)) \
        if any(s.select_by == "net_return" for s in specs) else None
    for spec in specs:
        fspec = feature_spec or get_spec(spec.features)
        if fspec.name not in feats:
            feats[fspec.name] = compute_features(arrays, fspec, peer=peer_arrays)
        if fspec.name not in shared:  # into the object store once, not per task
            shared[fspec.name] = runner.share(feats[fspec.name])
        lab = runner.share(labels[spec.name])
        jobs += [(spec, shared[fspec.name], lab, shared_ts, fold, cfg.threads, prices) for fold in folds]
    parts = runner.map(_fit_task, jobs, desc=f"walk-forward {history.symbol} {history.timeframe}")
    per_model = {spec.name: parts[k * len(folds):(k + 1) * len(folds)] for k, spec in enumerate(specs)}
    tests = {name: [p for p, _ in mine] for name, mine in per_model.items()}
    for spec in specs:
        mine = per_model[spec.name]
        if folds:
            vrows = np.concatenate([f.val for f in folds])
            validation[spec.name] = Forecasts(spec.name, ts[vrows], np.concatenate([v for _, v in mine]),
                                              labels[spec.name].y[vrows],
                                              np.concatenate([np.full(len(f.val), f.index) for f in folds]))
    # the ensemble is the mean P(up); meta-labeling models forecast something else (a trade's success)
    direction = [s.name for s in specs if s.target != "meta_trend"]
    paths = []
    for path in sched.paths:
        along = {s.name: along_path(s.name, path, folds, tests[s.name], ts, labels[s.name].y) for s in specs}
        if len(direction) > 1:
            first = along[direction[0]]
            mean = np.mean([along[n].p for n in direction], axis=0)
            along["ensemble"] = Forecasts("ensemble", first.ts, mean, first.y, first.fold)
        paths.append(along)
    forecasts = paths[0] if paths else {s.name: along_path(s.name, [], folds, [], ts, labels[s.name].y)
                                        for s in specs}
    seconds = time.perf_counter() - t0
    log.info("walk_forward_done", symbol=history.symbol, timeframe=history.timeframe,
             folds=len(folds), models=len(specs), seconds=round(seconds, 1))
    return WalkForwardResult(history.symbol, history.timeframe, fold_meta, forecasts, seconds, validation,
                             paths if cfg.splitter == "cpcv" else [])


def embargo_bars(cfg: WalkForwardConfig, timeframe: str) -> int:
    return int(np.ceil(cfg.cpcv_embargo_days * DAY_MS / timeframe_ms(timeframe)))


def plan_folds(ts: np.ndarray, ends: np.ndarray, labels: dict[str, Labels], cfg: WalkForwardConfig, horizon: int,
               max_window: int, timeframe: str) -> Schedule:
    """The folds every model is fitted on, each checked for leaks: one schedule for every model,
    a row fitted on once every model's label has resolved (purged by the longest real span)."""
    label_end = np.max([lab.end for lab in labels.values()], axis=0) if labels else np.arange(len(ts)) + horizon
    if labels:
        label_end[np.any([lab.end < 0 for lab in labels.values()], axis=0)] = -1
    sched = schedule(ts, ends, cfg, horizon, label_end, timeframe)
    for fold in sched.folds:
        if fold.groups:
            check_cpcv_fold(fold, label_end, sched.group_rows, embargo_bars(cfg, timeframe))
        else:
            check_fold(fold, horizon, max_window, label_end)
    return sched


def schedule(ts: np.ndarray, ends: np.ndarray, cfg: WalkForwardConfig, horizon: int, label_end: np.ndarray,
             timeframe: str) -> Schedule:
    """The configured splitter's folds and the paths their forecasts are read along."""
    if cfg.splitter == "cpcv":
        return make_cpcv_folds(ts, ends, cfg, label_end, embargo_bars(cfg, timeframe))
    folds = make_folds(ts, ends, cfg, horizon, label_end)
    return Schedule(folds, [[(f.index, int(f.test[0]), int(f.test[-1]) + 1) for f in folds]] if folds else [])


def along_path(name: str, path: SplitPath, folds: Sequence[Fold], preds: Sequence[np.ndarray], ts: np.ndarray,
               y: np.ndarray) -> Forecasts:
    """One model's out-of-sample forecasts along ``path``: each fold's forecasts of its segment's rows."""
    if not path:
        return Forecasts(name, ts[:0], np.zeros(0), y[:0], np.zeros(0, dtype=np.int64))
    sel = [(folds[k].test >= lo) & (folds[k].test < hi) for k, lo, hi in path]
    r = np.concatenate([folds[k].test[m] for (k, _, _), m in zip(path, sel, strict=True)])
    return Forecasts(name, ts[r], np.concatenate([preds[k][m] for (k, _, _), m in zip(path, sel, strict=True)]),
                     y[r], np.concatenate([np.full(int(m.sum()), k) for (k, _, _), m in zip(path, sel, strict=True)]))
