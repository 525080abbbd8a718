"""The NeuralEnsemble's voting rule replayed on walk-forward forecasts.

:class:`VoteStrategy` applies :func:`strategies.ensemble.vote` and
:func:`strategies.ensemble.decide` (k-of-n agreement, probability threshold,
strength floor ``act_strength``, exit rule, volatility risk level) to the per-model
out-of-sample probabilities of a walk-forward, bar by bar, exactly as
:class:`strategies.neural.NeuralEnsemble` does with its own models, without
retraining anything: a configured ``neural`` strategy without a decision table is
replayed with its own parameters (:func:`strategies.ensemble.voting_setup`), its
``weighting = "log_loss"`` weights taken per fold from that fold's validation
forecasts (:func:`fold_weights`) as the live strategy takes them from training's.
The risk level reads the volatility forecast given (the trailing realised one in
walk-forward: a configured ``vol_model`` is not walked forward); without one it is
not used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from bot.core.events import Signal, timeframe_ms
from strategies.base import BarContext, Strategy
from strategies.ensemble import VotingSetup, decide, log_loss_weights, vote, voting_setup
from strategies.training.classification import log_loss
from strategies.signals import annualised_vol


def fold_weights(validation: Mapping[str, object], weighting: str) -> dict[int, dict[str, float]]:
    """Per fold, the vote weights of ``weighting`` from the models' validation forecasts of that
    fold (``Forecasts``): equal, or skill over a coin flip (``max(ln 2 - log loss, 0)``)."""
    if weighting != "log_loss" or not validation:
        return {}
    first = next(iter(validation.values()))
    out: dict[int, dict[str, float]] = {}
    for k in np.unique(first.fold).tolist():  # type: ignore[attr-defined]
        losses = {}
        for name, f in validation.items():
            m = (f.fold == k) & np.isfinite(f.y) & np.isfinite(f.p)  # type: ignore[attr-defined]
            losses[name] = log_loss(f.y[m], f.p[m]) if m.any() else math.nan  # type: ignore[attr-defined]
        out[int(k)] = log_loss_weights(losses)
    return out


class VoteStrategy(Strategy):
    def __init__(
        self,
        name: str,
        symbol: str,
        timeframe: str,
        ts: np.ndarray,
        probs: Mapping[str, np.ndarray],
        setup: VotingSetup | None = None,
        vol: np.ndarray | None = None,
        fold: np.ndarray | None = None,
        weights: Mapping[int, Mapping[str, float]] | None = None,
    ) -> None:
        super().__init__(name, (symbol,), timeframe)
        self.setup = setup or voting_setup(len(probs))
        names = list(probs)
        matrix = np.column_stack([np.asarray(probs[n], dtype=np.float64) for n in names])
        vols = np.full(len(ts), np.nan) if vol is None else np.asarray(vol, dtype=np.float64)
        folds = np.zeros(len(ts), dtype=np.int64) if fold is None else np.asarray(fold)
        self._rows = {int(t): ({n: float(v) for n, v in zip(names, row, strict=True)}, float(sd), int(k))
                      for t, row, sd, k in zip(np.asarray(ts).tolist(), matrix, vols.tolist(), folds.tolist(),
                                               strict=True)}
        self._weights = dict(weights or {})
        self._bar_ms = timeframe_ms(timeframe)
        self.warmup = 1

    def evaluate(self, ctx: BarContext) -> Signal | None:
        row = self._rows.get(ctx.candle.ts)
        if row is None:
            return None
        probs, vol, fold = row
        rule, policy = self.setup.rule, self.setup.policy
        v = vote(probs, rule, self._weights.get(fold))
        if not v.probs:
            return None
        annual = annualised_vol(vol, self._bar_ms) if math.isfinite(vol) else None
        d = decide(v, rule, policy, ctx.position, annual, self.setup.exit_rule)
        return self.signal(
            ctx, d.direction, d.strength, reason=d.reason, probability=v.probability,
            size_pct=d.size_pct, votes=v.votes, confidence_low=d.confidence[0],
            confidence_high=d.confidence[1], risk_level=d.risk,
        )
