"""A retraining job: fit candidates and judge them against the running models.

Runs in a spawned child process (see :mod:`bot.ops.retrain`); everything here is
picklable and importable without the daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bot.core.events import Candle

DEFAULT_TRAINER = "bot.ops.retrain_job:fit_candidate"


@dataclass(frozen=True, slots=True)
class RetrainJob:
    models_dir: str
    symbol: str
    timeframe: str
    data_dir: str
    exchange: str = "binance"
    end_ms: int | None = None  # use history with open time before this (None: all)
    store_path: str | None = None  # also use candles stored by the daemon after the CSV ends
    model_names: tuple[str, ...] = ()  # () = every model of symbol/timeframe in the registry
    train_bars: int = 8760
    eval_bars: int = 720
    min_improvement: float = 0.0
    threads: int = 1
    trainer: str = DEFAULT_TRAINER  # "module:function" (spec, Dataset, val_fraction) -> Model
    staging: str = ""
    val_fraction: float = 0.15  # tail of the fitted bars that early-stops and calibrates


@dataclass(frozen=True, slots=True)
class Verdict:
    name: str
    metric: str
    incumbent: float
    candidate: float
    better: bool
    candidate_dir: str = ""
    error: str = ""


# -- the child process -------------------------------------------------------------------


def fit_candidate(spec: Any, ds: Any, val_fraction: float = 0.15) -> Any:
    """Default trainer: fit on every labelled window of ``ds`` (all bars before the held-out
    comparison bars); its last ``val_fraction``, after a purge of the target horizon,
    early-stops and calibrates, as in a walk-forward fold. Same spec as the running model."""
    # runs in the spawned trainer process: the training stack loads there, not in the daemon
    from bot.evaluation.walkforward import fit_windows
    from strategies.features.windows import valid_ends
    from strategies.training.selection import PriceSeries
    from strategies.training.labels import model_labels

    if spec.features != ds.spec.name:
        raise ValueError(f"{spec.name}: wants feature spec {spec.features!r}, dataset has {ds.spec.name!r}")
    arrays = ds.history.arrays
    labels = model_labels(arrays, spec, ds.history.timeframe)  # the running model's own target
    ends = valid_ends(ds.features, labels.y, spec.window)
    ends = ends[labels.end[ends] >= 0]  # resolved labels only
    if len(ends) < 50:
        raise ValueError(f"{spec.name}: {len(ends)} labelled windows, too few to fit a candidate")
    cut = int(ends[int(len(ends) * (1 - val_fraction))])
    # purge: a training label must resolve before the first validation bar (its real span)
    train, val = ends[labels.end[ends] < cut], ends[ends >= cut]
    prices = PriceSeries.of(arrays, ds.history.timeframe)  # select_by = "net_return" as walk-forward
    return fit_windows(spec, ds.features, labels, arrays["ts"], train, val, prices)


def score(model: Any, windows: Any) -> tuple[str, float]:
    # numpy: in the trainer process (see above)
    import numpy as np

    pred = model.predict_windows(windows)
    y = np.asarray(windows.y, dtype=np.float64)
    if model.task == "classification":
        return "brier", float(np.mean((pred - y) ** 2))
    return "mse", float(np.mean((pred - y) ** 2))


def _peer_history(job: RetrainJob, history: Any) -> Any:
    """The peer symbol's candles over ``history``'s span (cross-asset features), from the same sources."""
    from strategies.features.cross import peer_symbol
    from strategies.features.history import History

    peer = _history(replace(job, symbol=peer_symbol(job.symbol)))
    ts = history.arrays["ts"]
    keep = (peer.arrays["ts"] >= ts[0]) & (peer.arrays["ts"] <= ts[-1])
    return History(peer.symbol, peer.timeframe, {k: v[keep] for k, v in peer.arrays.items()}, peer.rejected)


def _history(job: RetrainJob) -> Any:
    # in the trainer process (see above)
    import numpy as np

    from bot.marketdata.candle_csv import candle_file, load_ohlcv_arrays
    from strategies.features.history import OHLCV_KEYS, clean_history

    arrays = load_ohlcv_arrays(candle_file(Path(job.data_dir), job.exchange, job.symbol, job.timeframe))
    if job.store_path and Path(job.store_path).exists():
        # aiosqlite: in the trainer process (see above)
        from bot.store.store import Store

        async def stored() -> list[Candle]:
            store = await Store.open(job.store_path)  # type: ignore[arg-type]
            try:
                last = int(arrays["ts"][-1]) if len(arrays["ts"]) else None
                return await store.load_candles(job.exchange, job.symbol, job.timeframe,
                                                None if last is None else last + 1)
            finally:
                await store.close()

        extra = asyncio.run(stored())
        if extra:
            add = {k: np.array([getattr(c, "ts" if k == "ts" else k) for c in extra]) for k in OHLCV_KEYS}
            arrays = {k: np.concatenate([arrays[k], add[k]]) for k in OHLCV_KEYS}
    sel = np.ones(len(arrays["ts"]), dtype=bool) if job.end_ms is None else arrays["ts"] < job.end_ms
    keep = np.flatnonzero(sel)[-(job.train_bars + job.eval_bars):]
    return clean_history({k: np.asarray(arrays[k])[keep] for k in OHLCV_KEYS}, job.symbol, job.timeframe)


def run_job(job: RetrainJob) -> list[Verdict]:
    """Train and judge candidates (runs in the spawned process; importable for tests)."""
    # torch and the training stack: in the trainer process (see above)
    import torch

    from strategies.features.compute import FeatureSpec
    from strategies.features.history import History
    from strategies.models.registry import load_model, model_dir, read_meta, save_model
    from strategies.models.spec import ModelSpec
    from strategies.training.pipeline import Dataset, prepare

    torch.set_num_threads(job.threads)
    with contextlib.suppress(ImportError):  # sklearn's OpenMP pools: same budget as torch
        # in the trainer process (see above)
        from threadpoolctl import threadpool_limits

        threadpool_limits(job.threads)
    module, _, func = job.trainer.partition(":")
    trainer: Callable[[Any, Any, float], Any] = getattr(importlib.import_module(module), func)
    history = _history(job)
    n = len(history)
    cut = n - job.eval_bars
    train_hist = History(history.symbol, history.timeframe,
                         {k: v[:cut] for k, v in history.arrays.items()}, history.rejected)
    root = model_dir(job.models_dir, job.symbol, job.timeframe, "x").parent
    names = job.model_names or tuple(p.parent.name for p in sorted(root.glob("*/meta.json")))
    verdicts: list[Verdict] = []
    peer = None  # the peer's candles, loaded once a model reads cross-asset features
    for name in names:
        try:
            meta = read_meta(root / name)
            spec = ModelSpec.model_validate(meta["spec"])
            fspec = FeatureSpec.from_dict(meta["feature_spec"])
            if fspec.needs_peer and peer is None:
                peer = _peer_history(job, history)
            full = Dataset.build(history, fspec, peer)
            windows = prepare(full, spec).windows
            recent = windows.subset(windows.end >= cut)
            incumbent = load_model(root / name, fspec)
            candidate = trainer(spec, Dataset.build(train_hist, fspec, peer), job.val_fraction)
            metric, inc = score(incumbent, recent)
            _, cand = score(candidate, recent)
            better = cand < inc - job.min_improvement
            out = ""
            if better:
                out = str(save_model(candidate, Path(job.staging) / name, fspec,
                                     data_range={"first_ts": int(history.arrays["ts"][0]),
                                                 "last_ts": int(history.arrays["ts"][cut - 1])},
                                     metrics={"recent": {metric: cand, "windows": len(recent)}}))
            verdicts.append(Verdict(name, metric, inc, cand, better, out))
        except Exception as exc:  # one broken model must not stop the others; reported upstream
            verdicts.append(Verdict(name, "", float("nan"), float("nan"), False, "", repr(exc)))
    return verdicts


def run_in_child(job: RetrainJob, conn: Any) -> None:
    try:
        conn.send(("ok", run_job(job)))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()
