"""Evaluate every strategy of a config on one candle history, out of sample.

:func:`evaluate_history` walks the models forward (:mod:`bot.evaluation.walkforward`),
then backtests, each in its own Engine and portfolio over the same candles and
with the same costs:

* one :class:`~bot.evaluation.backtest.ProbabilityStrategy` per model and one for
  the ensemble (the fast path: forecasts computed in batch, replayed bar by bar);
* every rule-based strategy given (the config's ``[[strategies]]``, typically the
  baselines), warmed up on the bars before the out-of-sample period.

All runs are scored over the same out-of-sample span.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import structlog
from tqdm.auto import tqdm

from bot.marketdata.source import CandleSource, NoCandlesError
from bot.config.settings import Settings
from bot.marketdata.candle_csv import arrays_to_candles
from bot.evaluation.backtest import (
    ProbabilityStrategy,
    RunRecord,
    run_strategy,
    with_costs,
)
from bot.evaluation.compute import Compute
from bot.evaluation.cpcv import path_summary
from bot.evaluation.edge_replay import EdgeReplayStrategy, MetaReplayStrategy
from bot.evaluation.regimes import regime_scores
from bot.evaluation.scoring import score, signal_forecasts
from bot.evaluation.vote import VoteStrategy, fold_weights
from bot.evaluation.walkforward import (
    Forecasts,
    WalkForwardConfig,
    WalkForwardResult,
    prepare_specs,
    walk_forward,
)
from bot.core.errors import UserInputError
from bot.core.events import timeframe_ms
from strategies.base import Strategy
from strategies.features.cross import peer_symbol
from strategies.ensemble import voting_setup
from strategies.features.compute import get_spec
from strategies.features.history import History, clean_history
from strategies.training.labels import trailing_vol
from strategies.models.spec import ModelSpec

log = structlog.get_logger(__name__)

VOTING_KEYS = frozenset(inspect.signature(voting_setup).parameters) - {"n_models"}


@dataclass
class AssetEvaluation:
    symbol: str
    timeframe: str
    walkforward: WalkForwardResult
    records: dict[str, RunRecord] = field(default_factory=dict)
    scores: dict[str, dict[str, Any]] = field(default_factory=dict)
    close_ts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    close: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def per_fold_accuracy(self) -> dict[str, list[float]]:
        """Directional accuracy of each forecaster on each fold's test rows (a CPCV split's rows are
        spread over the paths: each of its bars counted once)."""
        out: dict[str, list[float]] = {}
        sources = self.walkforward.paths or [self.walkforward.forecasts]
        for name in self.walkforward.forecasts:
            accs = []
            for k in range(len(self.walkforward.folds)):
                mine = [(f.ts[f.fold == k], f.p[f.fold == k], f.y[f.fold == k]) for f in (s[name] for s in sources)]
                ts, p, y = (np.concatenate(col) for col in zip(*mine, strict=True))
                once = np.unique(ts, return_index=True)[1]
                p, y = p[once], y[once]
                m = np.isfinite(y)
                accs.append(float(np.mean((p[m] >= 0.5) == (y[m] >= 0.5))) if m.any() else float("nan"))
            out[name] = accs
        return out


def _fingerprint(history: History | None) -> dict[str, Any] | None:
    if history is None:
        return None
    a = history.arrays
    return {"symbol": history.symbol, "tf": history.timeframe, "n": len(history),
            "first": int(a["ts"][0]) if len(history) else 0, "last": int(a["ts"][-1]) if len(history) else 0,
            "close_sum": float(np.sum(a["close"]))}


def _cache_key(history: History, cfg: WalkForwardConfig, specs: Sequence[ModelSpec],
               peer: History | None = None) -> str:
    blob = json.dumps({
        **(_fingerprint(history) or {}), "peer": _fingerprint(peer),
        "cfg": cfg.model_dump(mode="json", exclude={"cache_dir"}),
        "specs": [s.model_dump(mode="json") for s in specs],
        "format": 2,  # 2: validation-span forecasts stored too
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def peer_history(source: CandleSource, symbol: str, timeframe: str, specs: Sequence[ModelSpec],
                 since_ms: int | None, until_ms: int | None) -> History | None:
    """The peer symbol's candles over ``[since_ms, until_ms)`` when a model's feature spec has
    cross-asset inputs (``None`` otherwise); a missing series is a config error naming the fix."""
    needing = [s.name for s in specs if get_spec(s.features).needs_peer]
    if not needing:
        return None
    peer = peer_symbol(symbol)
    try:
        arrays = source.load(peer, timeframe, since_ms, until_ms)
    except (FileNotFoundError, NoCandlesError) as exc:
        raise UserInputError(
            f"model(s) {', '.join(needing)} read cross-asset features of {peer} for {symbol}, and {peer}"
            f" {timeframe} candles are missing ({exc}); add that series to the candle source"
            f" or set those models' features = \"default\"") from None
    return clean_history(arrays, peer, timeframe)


def cached_walk_forward(
    history: History, cfg: WalkForwardConfig, models: Sequence[ModelSpec] | None, progress: bool = True,
    compute: Compute | None = None, peer: History | None = None,
) -> WalkForwardResult:
    """:func:`walk_forward`, memoised on disk under ``cfg.cache_dir`` (keyed by data + config)."""
    specs = prepare_specs(cfg, models)
    path = None
    if cfg.cache_dir:
        key = _cache_key(history, cfg, specs, peer)
        name = f"{history.symbol.replace('/', '_')}-{history.timeframe}-{key}"
        path = Path(cfg.cache_dir) / f"{name}.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                fc = {n: Forecasts(n, z[f"{n}.ts"], z[f"{n}.p"], z[f"{n}.y"], z[f"{n}.fold"])
                      for n in meta["names"]}
                val = {n: Forecasts(n, z[f"val:{n}.ts"], z[f"val:{n}.p"], z[f"val:{n}.y"], z[f"val:{n}.fold"])
                       for n in meta.get("validation", [])}
                paths = [{n: Forecasts(n, z[f"path{j}:{n}.ts"], z[f"path{j}:{n}.p"], z[f"path{j}:{n}.y"],
                                       z[f"path{j}:{n}.fold"]) for n in meta["names"]}
                         for j in range(meta.get("paths", 0))]
            log.info("walk_forward_cached", path=str(path))
            return WalkForwardResult(meta["symbol"], meta["timeframe"], meta["folds"], fc, meta["seconds"], val,
                                     paths)
    result = walk_forward(history, cfg, models, progress=progress, compute=compute, peer=peer)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {}
        groups = [("", result.forecasts), ("val:", result.validation)]
        groups += [(f"path{j}:", p) for j, p in enumerate(result.paths)]
        for prefix, group in groups:
            for n, f in group.items():
                arrays.update({f"{prefix}{n}.ts": f.ts, f"{prefix}{n}.p": f.p, f"{prefix}{n}.y": f.y,
                               f"{prefix}{n}.fold": f.fold})
        meta = {"symbol": result.symbol, "timeframe": result.timeframe, "folds": result.folds,
                "names": list(result.forecasts), "validation": list(result.validation),
                "paths": len(result.paths), "seconds": result.seconds}
        np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)  # type: ignore[arg-type]
    return result


def replay_strategies(history: History, wf: WalkForwardResult,
                      configured: Sequence[tuple[str, str, dict[str, Any]]],
                      specs: Sequence[ModelSpec]) -> list[Strategy]:
    """The configured ``neural`` strategies (the decision layer with a ``decision`` table, else the
    k-of-n vote with their own voting parameters) and ``meta_labeled`` strategies, on the
    walk-forward forecasts of the models they name (skipped, with a warning, when one of them
    was not walked forward)."""
    by_name = {s.name: s for s in specs}
    a = history.arrays
    out: list[Strategy] = []
    for kind, name, params in configured:
        models = [str(m) for m in params.get("models") or ()]
        missing = [m for m in models if m not in wf.forecasts]
        if not models or missing:
            log.warning("model_strategy_skipped", strategy=name, missing=missing or "models",
                        hint="name [[models]] entries in the strategy's models")
            continue
        first = wf.forecasts[models[0]]
        if kind == "meta_labeled":
            out.append(MetaReplayStrategy(name, history.symbol, history.timeframe, first.ts,
                                          {m: wf.forecasts[m].p for m in models}, params, a["ts"], a["close"]))
            continue
        vol_days = float(params.get("vol_days", 7.0))
        weights = fold_weights({m: wf.validation[m] for m in models if m in wf.validation},
                               str(params.get("weighting", "equal")))
        if "decision" in params:
            out.append(EdgeReplayStrategy(name, history.symbol, history.timeframe,
                                          {m: wf.forecasts[m] for m in models},
                                          {m: wf.validation[m] for m in models if m in wf.validation},
                                          by_name[models[0]], params["decision"], a["ts"], a["close"],
                                          vol_days, weights))
            continue
        try:
            setup = voting_setup(len(models), **{k: v for k, v in params.items() if k in VOTING_KEYS})
        except ValueError as exc:
            raise UserInputError(f"strategy {name!r}: {exc}") from None
        bars = max(1, round(vol_days * 86_400_000 / timeframe_ms(history.timeframe)))
        at = np.searchsorted(a["ts"], first.ts)
        out.append(VoteStrategy(name, history.symbol, history.timeframe, first.ts,
                                {m: wf.forecasts[m].p for m in models}, setup,
                                trailing_vol(a["close"], bars)[at], first.fold, weights))
    return out


async def backtest_all(
    settings: Settings,
    history: History,
    wf: WalkForwardResult,
    baselines: Sequence[Strategy],
    cfg: WalkForwardConfig,
    progress: bool = True,
    edges: Sequence[Strategy] = (),
    meta_models: frozenset[str] = frozenset(),
) -> AssetEvaluation:
    """Backtest each forecaster, configured decision-layer strategy and baseline alone over the
    out-of-sample span and score it (also per market regime)."""
    ev = AssetEvaluation(history.symbol, history.timeframe, wf)
    a = history.arrays
    ev.close_ts, ev.close = np.asarray(a["ts"], dtype=np.int64), np.asarray(a["close"], dtype=np.float64)
    start = wf.oos_start_ts
    if not wf.folds:
        return ev
    warm = max([s.warmup for s in baselines] + [2])
    first = max(0, int(np.searchsorted(ev.close_ts, start)) - warm - 1)
    candles = arrays_to_candles({k: v[first:] for k, v in a.items()}, settings.exchange.name,
                                history.symbol, history.timeframe)
    signal_risk = cfg.risk_profile == "signal"
    costed = with_costs(settings, cfg.spread_bps, signal_risk=signal_risk)
    jobs = forecast_strategies(history, wf.forecasts, cfg, meta_models)
    jobs += [(s, None) for s in list(edges) + list(baselines)]
    bar_ms = timeframe_ms(history.timeframe)
    for strat, f in tqdm(jobs, desc=f"backtests {history.symbol} {history.timeframe}", disable=not progress):
        own_size = strat in edges  # the decision layer sizes its own positions (vol targeting)
        rec = await run_strategy(costed, strat, candles, start_ts=start,  # costed carries SIGNAL_RISK
                                 size_pct=cfg.size_pct if signal_risk and not own_size else None)
        if f is not None:
            fc = {"ts": f.ts, "p": f.p, "y": f.y}
        else:
            fc = signal_forecasts(rec, ev.close_ts, ev.close)
            keep = fc["ts"] >= start
            fc = {k: v[keep] for k, v in fc.items()}
        rec.predictions = fc
        ev.records[strat.name] = rec
        ev.scores[strat.name] = score(rec, fc)
        ev.scores[strat.name]["regimes"] = regime_scores(rec.ts, rec.equity, rec.initial_equity, bar_ms,
                                                         ev.close_ts, ev.close)
    if len(wf.paths) > 1:
        await score_paths(ev, history, costed, candles, cfg, meta_models, progress)
    return ev


def forecast_strategies(history: History, forecasts: dict[str, Forecasts], cfg: WalkForwardConfig,
                        meta_models: frozenset[str]) -> list[tuple[Strategy, Forecasts | None]]:
    """A long/flat strategy per forecaster (and the models' vote), each with the forecasts it trades."""
    jobs: list[tuple[Strategy, Forecasts | None]] = []
    for name, f in forecasts.items():
        if name in meta_models:
            continue  # a meta-labeling secondary never trades alone (its strategy uses it)
        strat = ProbabilityStrategy.from_arrays(name, history.symbol, history.timeframe, f.ts, f.p,
                                                long_above=cfg.long_above, exit_below=cfg.exit_below,
                                                size_pct=cfg.size_pct)
        jobs.append((strat, f))
    models = {n: f for n, f in forecasts.items() if n != "ensemble" and n not in meta_models}
    if len(models) >= 2:
        first_f = next(iter(models.values()))
        voter = VoteStrategy("ensemble_vote", history.symbol, history.timeframe, first_f.ts,
                             {n: f.p for n, f in models.items()})
        jobs.append((voter, None))
    return jobs


async def score_paths(ev: AssetEvaluation, history: History, costed: Settings, candles: Sequence[Any],
                      cfg: WalkForwardConfig, meta_models: frozenset[str], progress: bool) -> None:
    """CPCV: backtest every forecaster along every other path too (path 0 is what ``ev.records``
    holds); ``scores[name]["cpcv"]`` gets the distribution of its Sharpe ratio over the paths."""
    paths = ev.walkforward.paths
    sharpes = {strat.name: [ev.scores[strat.name]["sharpe"]]
               for strat, _ in forecast_strategies(history, paths[0], cfg, meta_models)}
    jobs = [job for path in paths[1:] for job in forecast_strategies(history, path, cfg, meta_models)]
    size = cfg.size_pct if cfg.risk_profile == "signal" else None
    for strat, _ in tqdm(jobs, desc=f"cpcv paths {history.symbol} {history.timeframe}", disable=not progress):
        rec = await run_strategy(costed, strat, candles, start_ts=ev.walkforward.oos_start_ts, size_pct=size)
        sharpes[strat.name].append(score(rec)["sharpe"])
    for name, values in sharpes.items():
        ev.scores[name]["cpcv"] = path_summary(values)


def evaluate_history(
    settings: Settings,
    history: History,
    cfg: WalkForwardConfig,
    baselines: Sequence[Strategy],
    models: Sequence[ModelSpec] | None = None,
    progress: bool = True,
    configured: Sequence[tuple[str, str, dict[str, Any]]] = (),
    compute: Compute | None = None,
    peer: History | None = None,
) -> AssetEvaluation:
    """Walk forward (cached) and backtest everything on ``history``; synchronous entry point.
    ``configured``: (kind, name, params) of the config's neural and meta-labeled strategies;
    ``peer``: the peer symbol's history for cross-asset features (:func:`peer_history`)."""
    wf = cached_walk_forward(history, cfg, models, progress, compute, peer)
    specs = prepare_specs(cfg, models)
    edges = replay_strategies(history, wf, configured, specs)
    meta = frozenset(s.name for s in specs if s.target == "meta_trend")
    return asyncio.run(backtest_all(settings, history, wf, baselines, cfg, progress, edges, meta))


def oos_bars(ev: AssetEvaluation) -> int:
    return int(np.sum(ev.close_ts >= ev.walkforward.oos_start_ts))


def span_days(ev: AssetEvaluation) -> float:
    if not len(ev.close_ts):
        return 0.0
    return float(ev.close_ts[-1] - ev.walkforward.oos_start_ts + timeframe_ms(ev.timeframe)) / 86_400_000
