"""``neuralbot hyperopt``: a search that cannot see the period it is judged on.

Nested walk-forward. The history is cut at the outer start (``[hyperopt]
outer_start``, or the last ``outer_fraction`` of the span). Every trial is a full
walk-forward (retraining the configured models fold by fold) over the **inner**
bars only, scored on its inner out-of-sample periods; the sampler (Optuna, TPE by
default) sees nothing else. The chosen configuration is then walked forward once
over the whole history and scored on the outer span alone: that is the figure
reported.

Every trial goes into the ledger (:mod:`bot.store.trials`), which is what the
statistics need: the deflated Sharpe of the winner counts every configuration
ever tried on the series, and the probability of backtest overfitting is computed
by CSCV over the trials' inner daily returns. The Optuna study lives in SQLite
(``[hyperopt] storage``), so a killed search resumes; a trial found in the ledger
is told to the study again instead of being re-run.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import structlog

from bot.config.search_space import HyperoptConfig, apply_params
from bot.evaluation.compute import Compute
from bot.evaluation.overfitting import (
    PBOResult,
    SharpeStats,
    probability_of_overfitting,
    sharpe_per_period,
    sharpe_stats,
)
from bot.evaluation.trial import (
    TrialOutcome,
    evaluate_configuration,
    objective_value,
    try_configuration,
)
from bot.store.trials import (
    TrialRecord,
    append_trials,
    data_hash,
    params_hash,
    read_trials,
)
from strategies.features.history import History

log = structlog.get_logger(__name__)


@dataclass
class HyperoptResult:
    study: str
    symbol: str
    timeframe: str
    outer_start_ms: int
    n_trials: int  # trials of this study (inner)
    best_params: dict[str, Any]
    best_inner: dict[str, Any]  # the winner's inner metrics
    outer: dict[str, Any]  # the winner scored once on the outer span
    inner_stats: SharpeStats  # the winner's inner Sharpe deflated by every trial on the series
    outer_stats: SharpeStats  # the outer Sharpe (one configuration scored: no deflation)
    pbo: PBOResult | None
    trial_sharpes: list[float] = field(default_factory=list)  # per-day, every inner trial
    seconds: float = 0.0

    @property
    def flagged(self) -> bool:
        return self.inner_stats.flagged or (self.pbo is not None and self.pbo.flagged)


def outer_start_ms(cfg: HyperoptConfig, ts: np.ndarray) -> int:
    if cfg.outer_start is not None:
        d = cfg.outer_start
        return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)
    first, last = int(ts[0]), int(ts[-1])
    day = 86_400_000
    return first + (int((last - first) * (1 - cfg.outer_fraction)) // day) * day


def _sampler(cfg: HyperoptConfig) -> Any:
    import optuna  # deferred: only searches need it

    if cfg.sampler == "random":
        return optuna.samplers.RandomSampler(seed=cfg.seed)
    return optuna.samplers.TPESampler(seed=cfg.seed)


def run_hyperopt(settings: Any, history: History, compute: Compute, n_trials: int | None = None,
                 progress: bool = True) -> HyperoptResult:
    """Run (or resume) the configured search on ``history``; score the winner on the outer span."""
    import optuna  # deferred: only searches need it
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    cfg: HyperoptConfig = settings.hyperopt
    total = n_trials or cfg.trials
    a = history.arrays
    ts = np.asarray(a["ts"], dtype=np.int64)
    split = outer_start_ms(cfg, ts)
    inner = {k: np.ascontiguousarray(v[ts < split]) for k, v in a.items()}
    if len(inner["ts"]) < 2 or split > int(ts[-1]):
        raise ValueError(f"hyperopt: the outer start {_day(split)} leaves no inner or no outer bars "
                         f"(data {_day(int(ts[0]))} -> {_day(int(ts[-1]))})")
    if cfg.objective == "path_sharpe" and settings.walkforward.splitter != "cpcv":
        raise ValueError('hyperopt.objective = "path_sharpe" needs [walkforward] splitter = "cpcv"')
    base = settings.model_dump()
    study_name = f"{cfg.study_name}:{history.symbol}:{history.timeframe}"
    inner_hash = data_hash(inner["ts"], inner["close"])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg.storage.parent.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(study_name=study_name, storage=f"sqlite:///{cfg.storage}",
                                sampler=_sampler(cfg), direction="maximize", load_if_exists=True)
    ledger_path = settings.store.path
    known = {r["params_hash"]: r for r in read_trials(ledger_path, study=study_name, span="inner")
             if r["data_hash"] == inner_hash}
    _settle_stale(study, known, cfg)
    shared = compute.share(inner)

    def done() -> int:
        return sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials(deepcopy=False))

    # one bar over the whole search, counting each trial as it finishes (a resumed search starts
    # at the trials it already has)
    finished = tqdm(total=total, initial=min(done(), total), desc=f"trials {history.symbol} {history.timeframe}",
                    disable=not progress)

    def evaluate(trials: list[Any]) -> None:
        waiting: dict[str, list[Any]] = {}  # params hash -> the trials that asked for it
        todo: dict[str, dict[str, Any]] = {}
        for t in trials:
            params = {k: spec.suggest(t, k) for k, spec in cfg.space.items()}
            h = params_hash(params)
            hit = known.get(h)
            if hit is not None:  # evaluated before (maybe before a crash): tell, do not re-run
                study.tell(t, objective_value(hit["metrics"], cfg.objective, cfg.turnover_penalty))
                finished.update(1)
                continue
            waiting.setdefault(h, []).append(t)
            todo.setdefault(h, params)
        jobs = [(apply_params(base, p), shared, history.symbol, history.timeframe, cfg.strategy, None, split)
                for p in todo.values()]
        keys = list(todo)

        def tick(i: int, o: TrialOutcome | Exception) -> None:
            if isinstance(o, TrialOutcome):  # every trial that asked for it is done
                finished.update(len(waiting[keys[i]]))

        outcomes = compute.map(try_configuration, jobs, bar=False, on_result=tick)
        append_trials(ledger_path, [_record(study_name, "hyperopt", "inner", o, history, p, inner_hash, settings)
                                  for p, o in zip(todo.values(), outcomes, strict=True)
                                  if isinstance(o, TrialOutcome)])
        for h, o in zip(todo, outcomes, strict=True):
            if not isinstance(o, TrialOutcome):  # not a configuration at all: failed, never scored
                log.warning("hyperopt_invalid_trial", params=todo[h], error=str(o))
                for t in waiting[h]:
                    study.tell(t, state=optuna.trial.TrialState.FAIL)
                continue
            if cfg.objective == "path_sharpe" and "path_sharpe" not in o.metrics:
                raise ValueError(f"hyperopt.strategy {o.strategy!r} has no CPCV paths to score; name a "
                                 "forecaster (a [[models]] name, 'ensemble' or 'ensemble_vote')")
            known[h] = {"metrics": o.metrics}
            for t in waiting[h]:
                study.tell(t, objective_value(o.metrics, cfg.objective, cfg.turnover_penalty))

    asked, max_asks = 0, 5 * total  # an invalid sample is not a trial; give up on a space mostly invalid
    try:
        while (left := total - done()) > 0:
            if asked >= max_asks:
                raise ValueError(f"hyperopt: {asked} samples gave only {done()} valid configurations; "
                                 "narrow [hyperopt.space] (e.g. keep a fast window below the slow one)")
            batch = min(left, compute.parallelism)
            asked += batch
            evaluate([study.ask() for _ in range(batch)])
            if done():
                finished.set_postfix(best=round(study.best_value, 4))
    finally:
        finished.close()
    best = study.best_trial.params
    full = compute.share({k: np.ascontiguousarray(v) for k, v in a.items()})
    [outer] = compute.map(evaluate_configuration,
                          [(apply_params(base, best), full, history.symbol, history.timeframe, cfg.strategy,
                            split, None)], desc="outer")
    outer_hash = data_hash(ts[ts >= split], np.asarray(a["close"])[ts >= split])
    append_trials(ledger_path, [_record(study_name, "hyperopt", "outer", outer, history, best, outer_hash,
                                      settings)])
    return _summarise(settings, history, study_name, split, best, outer, time.perf_counter() - t0)


def _summarise(settings: Any, history: History, study_name: str, split: int, best: dict[str, Any],
               outer: TrialOutcome, seconds: float) -> HyperoptResult:
    cfg: HyperoptConfig = settings.hyperopt
    mine = read_trials(settings.store.path, study=study_name, span="inner")
    series = read_trials(settings.store.path, symbol=history.symbol, timeframe=history.timeframe)
    universe = {r["params_hash"]: sharpe_per_period(np.nan_to_num(np.asarray(r["returns"])))
                for r in series if r["span"] != "outer"}
    winner = next(r for r in reversed(mine) if r["params_hash"] == params_hash(best))
    inner_stats = sharpe_stats(np.asarray(winner["returns"]), np.asarray(list(universe.values())))
    outer_stats = sharpe_stats(np.asarray(outer.returns))
    pbo = None
    distinct = {r["params_hash"]: np.asarray(r["returns"]) for r in mine}
    lengths = {len(v) for v in distinct.values()}
    if len(distinct) >= 2 and len(lengths) == 1 and lengths.pop() >= 2 * cfg.pbo_blocks:
        pbo = probability_of_overfitting(np.nan_to_num(np.column_stack(list(distinct.values()))),
                                         n_blocks=cfg.pbo_blocks)
    return HyperoptResult(study_name, history.symbol, history.timeframe, split, len(distinct), best,
                          winner["metrics"], outer.metrics, inner_stats, outer_stats, pbo,
                          [sharpe_per_period(np.nan_to_num(v)) for v in distinct.values()], seconds)


def _settle_stale(study: Any, known: dict[str, Any], cfg: HyperoptConfig) -> None:
    """Trials left RUNNING by a killed search: told from the ledger if they finished, else failed."""
    # optuna: only when a search runs
    import optuna

    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        hit = known.get(params_hash(t.params))
        if hit is not None and set(t.params) == set(cfg.space):
            study.tell(t.number, objective_value(hit["metrics"], cfg.objective, cfg.turnover_penalty))
        else:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            if set(t.params) == set(cfg.space):
                study.enqueue_trial(t.params)  # run it again, first


def _record(study: str, source: str, span: str, o: TrialOutcome, history: History, params: dict[str, Any],
            dhash: str, settings: Any) -> TrialRecord:
    return TrialRecord(study, source, span, o.strategy, history.symbol, history.timeframe, params,
                       _seed(settings), o.day_ts[0] if o.day_ts else 0, o.day_ts[-1] if o.day_ts else 0,
                       dhash, o.returns, o.metrics, int(time.time() * 1000))


def _seed(settings: Any) -> int | None:
    return settings.models[0].seed if settings.models else None


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def result_dict(r: HyperoptResult) -> dict[str, Any]:
    return {
        "study": r.study, "outer_start_ts": r.outer_start_ms, "trials": r.n_trials,
        "best_params": r.best_params, "best_toml": toml_snippet(r.best_params),
        "inner": r.best_inner, "outer": r.outer,
        "inner_stats": r.inner_stats.as_dict(), "outer_stats": r.outer_stats.as_dict(),
        "pbo": None if r.pbo is None else {"pbo": r.pbo.pbo, "splits": r.pbo.n_splits,
                                           "flagged": r.pbo.flagged},
        "trial_sharpes_per_day": r.trial_sharpes, "flagged": r.flagged, "seconds": round(r.seconds, 1),
    }


def toml_snippet(params: dict[str, Any]) -> str:
    """The winning values as TOML to paste into the config (list entries by their name)."""
    sections: dict[str, list[str]] = {}
    for key, value in sorted(params.items()):
        parts = key.split(".")
        if parts[0] in ("strategies", "models") and len(parts) > 2:
            head = f"[[{parts[0]}]]  # the entry with name = {parts[1]!r}"
            leaf = ".".join(parts[2:])
        else:
            head, leaf = f"[{'.'.join(parts[:-1])}]", parts[-1]
        sections.setdefault(head, []).append(f"{leaf} = {json.dumps(value)}")
    return "\n".join(f"{h}\n" + "\n".join(lines) + "\n" for h, lines in sections.items()).strip()
