"""The NeuralEnsemble's voting rule replayed on walk-forward forecasts.

:class:`VoteStrategy` applies :func:`strategies.ensemble.vote` and
:func:`strategies.ensemble.decide` (k-of-n agreement, probability threshold,
strength floor ``act_strength``) to the per-model out-of-sample probabilities of
a walk-forward, bar by bar, exactly as :class:`strategies.neural.NeuralEnsemble`
does with its own models, without retraining anything. The volatility-based
risk level is not used (no volatility forecast is walked forward).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from bot.events import Signal
from strategies.base import BarContext, Strategy
from strategies.ensemble import VotingRule, decide, vote
from strategies.signals import SignalPolicy


class VoteStrategy(Strategy):
    def __init__(
        self,
        name: str,
        symbol: str,
        timeframe: str,
        ts: np.ndarray,
        probs: Mapping[str, np.ndarray],
        rule: VotingRule | None = None,
        policy: SignalPolicy | None = None,
    ) -> None:
        super().__init__(name, (symbol,), timeframe)
        self.rule = rule or VotingRule(k=min(4, len(probs)), n=len(probs))
        self.policy = policy or SignalPolicy()
        names = list(probs)
        matrix = np.column_stack([np.asarray(probs[n], dtype=np.float64) for n in names])
        self._rows = {int(t): {n: float(v) for n, v in zip(names, row, strict=True)}
                      for t, row in zip(np.asarray(ts).tolist(), matrix, strict=True)}
        self.warmup = 1

    def evaluate(self, ctx: BarContext) -> Signal | None:
        probs = self._rows.get(ctx.candle.ts)
        if probs is None:
            return None
        v = vote(probs, self.rule)
        if not v.probs:
            return None
        d = decide(v, self.rule, self.policy, ctx.position)
        return self.signal(
            ctx, d.direction, d.strength, reason=d.reason, probability=v.probability,
            size_pct=d.size_pct, votes=v.votes, confidence_low=d.confidence[0],
            confidence_high=d.confidence[1], risk_level=d.risk,
        )
