"""One configuration, walked forward and backtested on one series: the unit of research work.

:func:`evaluate_configuration` is a pure function of plain data (the settings as
``model_dump()``, the bar arrays, the span to score), so it runs the same in this
process or as a Ray task. It retrains the configured models fold by fold when the
configuration has any, replays every strategy with costs, and scores the named one
over ``[score_from, score_to)``: its daily returns (what the ledger keeps and the
statistics read) and its metrics.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from pydantic import ValidationError

from bot.config.settings import Settings
from bot.evaluation.backtest import RunRecord
from bot.evaluation.candidates import (
    MODEL_KINDS,
    model_specs,
    model_strategies,
    rule_strategies,
)
from bot.evaluation.performance import MS_PER_YEAR
from bot.evaluation.runner import backtest_all, evaluate_history
from bot.evaluation.schedule import period_starts
from bot.evaluation.scoring import score
from bot.evaluation.walkforward import WalkForwardResult
from strategies.features.history import History

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class TrialOutcome:
    strategy: str
    day_ts: tuple[int, ...]  # UTC day starts of the returns
    returns: tuple[float, ...]  # daily returns over the scored span
    metrics: dict[str, Any]


class UnknownStrategy(ValueError):
    """The strategy the objective scores is not among those evaluated."""


class InvalidTrial(ValueError):
    """The sampled values make no valid configuration (e.g. a fast window above the slow one)."""


def try_configuration(*args: Any) -> TrialOutcome | InvalidTrial:
    """:func:`evaluate_configuration`, with an invalid sampled configuration returned, not raised
    (a search records that trial as failed and goes on)."""
    try:
        return evaluate_configuration(*args)
    except InvalidTrial as exc:
        return exc


def evaluate_configuration(settings_data: dict[str, Any], arrays: dict[str, np.ndarray], symbol: str,
                           timeframe: str, strategy: str | None, score_from: int | None,
                           score_to: int | None) -> TrialOutcome:
    """Walk forward + backtest ``settings_data`` on ``arrays``; score ``strategy`` on the span."""
    if score_to is not None and len(arrays["ts"]) and int(arrays["ts"][-1]) >= score_to:
        raise AssertionError("a trial was handed bars at or after the end of the span it may read")
    try:
        settings = Settings(**settings_data)
        baselines = rule_strategies(settings, symbol, timeframe)
    except (ValidationError, ValueError) as exc:  # StrategyParamError and the kinds' own checks
        raise InvalidTrial(str(exc).splitlines()[0]) from None
    cfg = settings.walkforward.model_copy(update={"cache_dir": None})
    history = History(symbol, timeframe, arrays)
    if settings.models or any(s.enabled and s.kind in MODEL_KINDS for s in settings.strategies):
        ev = evaluate_history(settings, history, cfg, baselines, model_specs(settings), progress=False,
                              configured=model_strategies(settings))
    else:  # rules alone: no model to retrain, only the schedule says where scoring starts
        ev = asyncio.run(backtest_all(settings, history, schedule_only(history, cfg), baselines, cfg,
                                      progress=False))
    name = strategy or next(iter(ev.records), None)
    if name not in ev.records:
        raise UnknownStrategy(f"hyperopt.strategy {name!r} is not among the evaluated strategies "
                              f"({', '.join(ev.records) or 'none'})")
    rec = ev.records[name]
    if score_from is not None:
        return outcome(name, slice_record(rec, score_from))
    done = outcome(name, rec)
    if paths := ev.scores[name].get("cpcv"):  # CPCV: the Sharpe over every path, not path 0 alone
        done.metrics.update(path_sharpe=paths["mean"], path_sharpes=paths["sharpe"])
    return done


def schedule_only(history: Any, cfg: Any) -> Any:
    """The walk-forward schedule without models: where out-of-sample scoring starts."""

    ts = history.arrays["ts"]
    if len(ts) < 2:
        return WalkForwardResult(history.symbol, history.timeframe, [], {})
    bounds = period_starts(int(ts[0]), int(ts[-1]), cfg.retrain_every, cfg.min_train_days)
    folds = [{"fold": i, "test_from": lo, "test_to": bounds[i + 1] if i + 1 < len(bounds) else int(ts[-1]) + 1}
             for i, lo in enumerate(bounds)]
    return WalkForwardResult(history.symbol, history.timeframe, folds, {})


def slice_record(rec: RunRecord, start_ms: int) -> RunRecord:
    """``rec`` over the bars opening at or after ``start_ms``, from the equity it had then."""
    keep = rec.ts > start_ms  # equity snapshots are stamped at bar close
    before = rec.equity[~keep]
    initial = float(before[-1]) if len(before) else rec.initial_equity
    return replace(rec, initial_equity=initial, ts=rec.ts[keep], equity=rec.equity[keep],
                   exposure=rec.exposure[keep], fills=_fills_from(rec.fills, start_ms),
                   signals=[s for s in rec.signals if s.ts > start_ms])


def _fills_from(fills: list[dict[str, Any]], start_ms: int) -> list[dict[str, Any]]:
    """Fills at or after ``start_ms`` of the round trips that also opened then (a position held
    across the cut counts in the equity, not as a trade)."""
    held: dict[str, float] = {}
    opened: set[str] = set()
    out = []
    for f in fills:
        sym, amount = str(f["symbol"]), float(f["amount"])
        before = held.get(sym, 0.0)
        held[sym] = before + (amount if f["side"] == "buy" else -amount)
        if int(f["ts"]) < start_ms:
            continue
        if sym in opened or abs(before) <= 1e-12:
            opened.add(sym)
            out.append(f)
    return out


def daily_returns(rec: RunRecord) -> tuple[np.ndarray, np.ndarray]:
    """(UTC day starts, returns of each day's closing equity over the previous close)."""
    if not len(rec.ts):
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    days = (rec.ts - 1) // DAY_MS  # snapshots are stamped at bar close: midnight ends the day before
    last = np.r_[days[1:] != days[:-1], True]
    closes = np.concatenate([[rec.initial_equity], rec.equity[last]])
    return days[last] * DAY_MS, closes[1:] / closes[:-1] - 1.0


def outcome(name: str, rec: RunRecord) -> TrialOutcome:

    day_ts, rets = daily_returns(rec)
    m = score(rec)
    dd = m.get("max_drawdown") or 0.0
    m["calmar"] = (m["annual_return"] / -dd) if dd < 0 else None
    m["daily_sharpe"] = _annualised_daily(rets)
    return TrialOutcome(name, tuple(int(x) for x in day_ts), tuple(float(x) for x in rets), m)


def _annualised_daily(r: np.ndarray) -> float:
    if len(r) < 2 or float(np.std(r, ddof=1)) == 0:
        return 0.0
    return float(np.mean(r) / np.std(r, ddof=1) * np.sqrt(MS_PER_YEAR / DAY_MS))


def objective_value(metrics: dict[str, Any], objective: str, turnover_penalty: float) -> float:
    """The number a search maximises; a missing metric scores as very bad, never as NaN."""
    if objective == "sharpe_turnover":
        value = (metrics.get("sharpe") or 0.0) - turnover_penalty * (metrics.get("turnover") or 0.0)
    else:
        value = metrics.get(objective)
    return float(value) if value is not None and np.isfinite(value) else -1e9
