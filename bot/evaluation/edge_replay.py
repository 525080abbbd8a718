"""Configured model strategies replayed on walk-forward forecasts: the decision layer, meta-labeling.

:class:`EdgeReplayStrategy` is what :class:`strategies.neural.NeuralEnsemble` does
with a ``decision`` table, driven by the out-of-sample probabilities of the models
it names instead of models loaded from the registry: the combined P(up) is the
mean of those models' calibrated forecasts, weighted as the strategy's ``weighting``
says (``"log_loss"``: per fold, from that fold's validation forecasts, see
:func:`bot.evaluation.vote.fold_weights`), the volatility forecast is the trailing 7-day realised volatility (a configured
``vol_model`` is not walked forward), and the same :class:`strategies.edge.EdgeLayer`
decides, built from the same parameters and the models' label settings. It keeps
the decision layer's own vol-targeted size. With ``enter_margin = "validation"`` the
entry level of each fold is chosen on that fold's validation-span forecasts by
:func:`strategies.training.selection.select_enter_margin` (net-of-cost return per unit of risk);
nothing is chosen on a test period.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from bot.evaluation.walkforward import Forecasts
from bot.core.events import Signal, timeframe_ms
from strategies.base import BarContext, Strategy
from strategies.decision import EdgePolicy
from strategies.edge import EdgeLayer, edge_policy
from strategies.training.labels import move_function
from strategies.meta import MetaDecider
from strategies.training.selection import select_enter_margin
from strategies.training.labels import trailing_vol, trend_side
from strategies.models.spec import ModelSpec
from strategies.neural import horizon_label


def combined(forecasts: Mapping[str, Forecasts], weights: Mapping[int, Mapping[str, float]] | None) -> np.ndarray:
    """The models' P(up) combined per bar: their mean, or with ``weights`` (per fold, by model)
    their weighted mean in each fold."""
    names = list(forecasts)
    p = np.array([forecasts[n].p for n in names], dtype=np.float64)
    if not weights:
        return np.mean(p, axis=0)
    fold = next(iter(forecasts.values())).fold
    w = np.array([[float(weights.get(int(k), {}).get(n, 1.0)) for k in fold.tolist()] for n in names])
    return np.sum(p * w, axis=0) / np.maximum(np.sum(w, axis=0), 1e-12)


class EdgeReplayStrategy(Strategy):
    def __init__(self, name: str, symbol: str, timeframe: str, forecasts: Mapping[str, Forecasts],
                 validation: Mapping[str, Forecasts], spec: ModelSpec, decision: Mapping[str, Any],
                 history_ts: np.ndarray, history_close: np.ndarray, vol_days: float = 7.0,
                 weights: Mapping[int, Mapping[str, float]] | None = None) -> None:
        super().__init__(name, (symbol,), timeframe)
        bar_ms = timeframe_ms(timeframe)
        bars = max(1, int(round(vol_days * 86_400_000 / bar_ms)))
        row_of = {int(t): i for i, t in enumerate(np.asarray(history_ts).tolist())}
        vol_all = trailing_vol(history_close, bars)
        first = next(iter(forecasts.values()))
        mean = combined(forecasts, weights)
        self._rows = {int(t): (float(p), float(vol_all[row_of[int(t)]]), int(k))
                      for t, p, k in zip(first.ts.tolist(), mean.tolist(), first.fold.tolist(), strict=True)
                      if np.isfinite(p) and int(t) in row_of}
        self.models = tuple(forecasts)
        by_validation = decision.get("enter_margin") == "validation"
        params = {k: v for k, v in decision.items() if not (by_validation and k == "enter_margin")}
        move = move_function(spec.target, spec.horizon, spec.barrier_k, spec.barrier_floor, spec.cost)
        base = edge_policy(params, spec.horizon)
        self.layer = EdgeLayer(base, move, timeframe, horizon_label(spec.horizon, timeframe))
        # per fold: the policy (entry level chosen on that fold's validation span when asked)
        self.policies: dict[int, EdgePolicy] = {}
        self.selected: dict[int, float] = {}
        if by_validation:
            if set(validation) != set(forecasts):
                raise ValueError(f"{name}: enter_margin = 'validation' needs validation forecasts")
            v0 = next(iter(validation.values()))
            vmean = combined(validation, weights)
            for k in np.unique(v0.fold).tolist():
                sel = np.flatnonzero(v0.fold == k)
                rows = np.array([row_of[int(t)] for t in v0.ts[sel]])
                m, _ = select_enter_margin(vmean[sel], vol_all[rows], np.asarray(history_close)[rows], base,
                                           move, bar_ms)
                self.selected[int(k)] = m
                self.policies[int(k)] = replace(base, enter_margin=m, exit_edge=min(base.exit_edge, base.cost + m))
        self.warmup = 1

    def evaluate(self, ctx: BarContext) -> Signal | None:
        row = self._rows.get(ctx.candle.ts)
        if row is None:
            return None
        p, vol, fold = row
        self.layer.policy = self.policies.get(fold, self.layer.policy)
        d, annual = self.layer.decide(ctx.candle.symbol, p, vol, ctx.position)
        chosen = f"; entry level chosen on fold {fold}'s validation span" if fold in self.selected else ""
        return self.layer.signal(self, ctx, d, p, annual, f"P={p:.3f} (mean of {', '.join(self.models)}){chosen}")


class MetaReplayStrategy(Strategy):
    """A configured ``meta_labeled`` strategy on the walk-forward forecasts of its secondary model(s):
    the same trend rule from the closes, the same :class:`strategies.meta.MetaDecider`."""

    def __init__(self, name: str, symbol: str, timeframe: str, ts: np.ndarray, probs: Mapping[str, np.ndarray],
                 params: Mapping[str, Any], history_ts: np.ndarray, history_close: np.ndarray) -> None:
        super().__init__(name, (symbol,), timeframe)
        fast, slow = int(params.get("fast", 20)), int(params.get("slow", 50))
        self.rule = MetaDecider(fast, slow, float(params.get("min_probability", 0.5)),
                                EdgePolicy(target_vol=float(params.get("target_vol", 0.5)),
                                           max_exposure=float(params.get("max_exposure", 1.0))),
                                timeframe_ms(timeframe))
        bars = max(1, int(round(float(params.get("vol_days", 7.0)) * 86_400_000 / timeframe_ms(timeframe))))
        side = trend_side(history_close, fast, slow)
        vol = trailing_vol(history_close, bars)
        at = {int(t): i for i, t in enumerate(np.asarray(history_ts).tolist())}
        mean = np.mean([np.asarray(p, dtype=np.float64) for p in probs.values()], axis=0)
        self._rows = {int(t): (bool(side[at[int(t)]]), float(q), float(vol[at[int(t)]]))
                      for t, q in zip(np.asarray(ts).tolist(), mean.tolist(), strict=True)
                      if np.isfinite(q) and int(t) in at}
        self.warmup = 1

    def evaluate(self, ctx: BarContext) -> Signal | None:
        row = self._rows.get(ctx.candle.ts)
        if row is None:
            return None
        primary, q, vol = row
        direction, exposure, why = self.rule.decide(primary, q, vol, ctx.position > 0)
        return self.signal(ctx, direction, 100.0 if exposure > 0 else 50.0, reason=why,
                           size_pct=round(min(100.0, exposure * 100.0), 4), probability=q)
