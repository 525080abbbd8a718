"""The training pipeline: history -> features -> targets -> split -> fit -> calibrate -> evaluate.

* Features are computed once per (history, feature spec) with the same engine the
  live buffer uses; they are causal, so computing them over the whole history
  leaks nothing.
* Labels come from :func:`strategies.training.labels.model_labels` (direction, returns, or the
  cost-aware triple barrier / net-of-cost classes), each with the row that resolves it.
  Window ends are split chronologically 70/15/15; a window stays in its split only if
  its label resolves before the next split starts (its real span), plus ``purge`` bars
  of embargo (:func:`strategies.features.windows.chronological_split`).
* Multi-bar labels overlap: training windows are weighted by average uniqueness
  (:func:`strategies.training.labels.uniqueness_weights`) unless ``sample_weights = "none"``.
* Normalisation statistics are fitted on the rows the training windows read, and
  nothing else.
* The model trains on train, early-stops on val, calibrates on val, and is
  scored once on test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import structlog
import torch

from bot.marketdata.source import CandleSource
from strategies.features.cross import peer_symbol
from strategies.features.compute import FeatureSpec, compute_features, get_spec
from strategies.features.history import History, load_history
from strategies.training.classification import classification_metrics, regression_metrics
from strategies.models.spec import ModelSpec, TrainConfig
from strategies.models.base import Model
from strategies.models.zoo import build_model
from strategies.models.base import FitReport
from strategies.training.labels import model_labels, uniqueness_weights
from strategies.training.selection import PriceSeries
from strategies.features.windows import Normalizer, Split, Windows, chronological_split, valid_ends

log = structlog.get_logger(__name__)

OVERFIT_GAP = 0.08  # train accuracy - test accuracy above this triggers a warning
MAX_EVAL_TRAIN = 8000  # train-split metrics on the most recent windows only (speed)


@dataclass(frozen=True, slots=True)
class Dataset:
    history: History
    spec: FeatureSpec
    features: np.ndarray  # [N, F] float64, raw

    @classmethod
    def build(cls, history: History, spec: FeatureSpec, peer: History | None = None) -> Dataset:
        """``peer``: the peer symbol's history, for a spec with cross-asset features."""
        return cls(history, spec, compute_features(history.arrays, spec,
                                                   peer=None if peer is None else peer.arrays))


@dataclass(frozen=True, slots=True)
class Prepared:
    windows: Windows  # all valid labelled windows
    split: Split
    normalizer: Normalizer

    def part(self, ends: np.ndarray) -> Windows:
        idx = np.searchsorted(self.windows.end, ends)
        return self.windows.subset(idx)


@dataclass(slots=True)
class TrainResult:
    model: Model
    report: FitReport
    metrics: dict[str, dict[str, float]]
    data_range: dict[str, object]
    seconds: float
    warnings: list[str] = field(default_factory=list)


def prepare(ds: Dataset, spec: ModelSpec) -> Prepared:
    """Labels, windows and a split purged by each label's real span (plus ``spec.purge`` bars of
    embargo); training windows carry average-uniqueness weights when ``spec.weighted``."""
    labels = model_labels(ds.history.arrays, spec, ds.history.timeframe)
    ends = valid_ends(ds.features, labels.y, spec.window)
    split = chronological_split(ends, spec.split, spec.purge or 0, label_end=labels.end)
    lo, hi = split.train_rows
    normalizer = Normalizer.fit(ds.features[lo - spec.window + 1 : hi + 1])
    ts = ds.history.arrays["ts"]
    w = None
    if spec.weighted:
        w = np.ones(len(ends))
        is_train = np.isin(ends, split.train)
        w[is_train] = uniqueness_weights(ends[is_train], labels.end[ends[is_train]])
    windows = Windows(ds.features, ends, labels.y[ends].astype(np.float32), spec.window, ts[ends], w)
    return Prepared(windows, split, normalizer)


def evaluate(model: Model, w: Windows) -> dict[str, float]:
    pred = model.predict_windows(w)
    if model.task == "classification":
        return classification_metrics(w.y, pred)
    return regression_metrics(w.y, pred)


def train_model(spec: ModelSpec, ds: Dataset, progress: bool = False) -> TrainResult:
    if spec.features != ds.spec.name:
        raise ValueError(f"{spec.name}: wants feature spec {spec.features!r}, dataset has {ds.spec.name!r}")
    t0 = time.perf_counter()
    p = prepare(ds, spec)
    train_w, val_w, test_w = p.part(p.split.train), p.part(p.split.val), p.part(p.split.test)
    np.random.seed(spec.seed)
    torch.manual_seed(spec.seed)
    model = build_model(spec, ds.spec.n_features, p.normalizer)
    select = PriceSeries.of(ds.history.arrays, ds.history.timeframe).score(spec, val_w.end, val_w.y) \
        if spec.select_by == "net_return" else None
    report = model.fit(train_w, val_w, progress=progress, select=select)
    model.calibrate(val_w, select)
    metrics = {
        "train": evaluate(model, train_w.subset(slice(-MAX_EVAL_TRAIN, None))),
        "val": evaluate(model, val_w),
        "test": evaluate(model, test_w),
    }
    ts = ds.history.arrays["ts"]
    data_range = {
        "symbol": ds.history.symbol,
        "timeframe": ds.history.timeframe,
        "first_ts": int(ts[0]),
        "last_ts": int(ts[-1]),
        "rows": len(ds.history),
        "rejected_rows": ds.history.rejected,
        "train_ts": [int(ts[p.split.train[0]]), int(ts[p.split.train[-1]])],
        "val_ts": [int(ts[p.split.val[0]]), int(ts[p.split.val[-1]])],
        "test_ts": [int(ts[p.split.test[0]]), int(ts[p.split.test[-1]])],
        "n_windows": {"train": len(train_w), "val": len(val_w), "test": len(test_w)},
        "purge_bars": spec.purge_bars,
        "target": {"kind": spec.target, "horizon": spec.horizon},
        "sample_weights": "uniqueness" if spec.weighted else "none",
    }
    warnings = overfit_warnings(spec.name, metrics)
    for w in warnings:
        log.warning("overfitting", model=spec.name, detail=w)
    return TrainResult(model, report, metrics, data_range, time.perf_counter() - t0, warnings)


def overfit_warnings(name: str, metrics: dict[str, dict[str, float]]) -> list[str]:
    tr, te = metrics["train"], metrics["test"]
    if "accuracy" in tr:
        gap = tr["accuracy"] - te["accuracy"]
        if gap > OVERFIT_GAP:
            return [f"{name}: train accuracy {tr['accuracy']:.3f} vs test {te['accuracy']:.3f} "
                    f"(gap {gap:.3f} > {OVERFIT_GAP}) - likely overfitting"]
    elif tr.get("r2", 0.0) - te.get("r2", 0.0) > 0.2:
        return [f"{name}: train R2 {tr['r2']:.3f} vs test {te['r2']:.3f} - likely overfitting"]
    return []


def iter_train(cfg: TrainConfig, progress: bool = False) -> Iterator[TrainResult]:
    """Train every model of ``cfg`` in order (features computed once per spec)."""
    torch.set_num_threads(cfg.threads)
    source = CandleSource(cfg.data_source, cfg.data_dir, cfg.store_path, cfg.exchange)
    history = load_history(source, cfg.symbol, cfg.timeframe, cfg.start, cfg.end)
    log.info("history_loaded", symbol=cfg.symbol, timeframe=cfg.timeframe, rows=len(history),
             rejected=history.rejected)
    datasets: dict[str, Dataset] = {}
    for spec in cfg.models:
        if spec.features not in datasets:
            fspec = get_spec(spec.features)
            peer = load_history(source, peer_symbol(cfg.symbol), cfg.timeframe, cfg.start, cfg.end) \
                if fspec.needs_peer else None
            datasets[spec.features] = Dataset.build(history, fspec, peer)
        yield train_model(spec, datasets[spec.features], progress=progress)
