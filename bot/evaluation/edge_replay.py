"""A configured ``neural`` strategy with a decision layer, replayed on walk-forward forecasts.

:class:`EdgeReplayStrategy` is what :class:`strategies.neural.NeuralEnsemble` does
with a ``decision`` table, driven by the out-of-sample probabilities of the models
it names instead of models loaded from the registry: the combined P(up) is the
mean of those models' calibrated forecasts (the strategy's ``weighting = "equal"``),
the volatility forecast is the trailing 7-day realised volatility (a configured
``vol_model`` is not walked forward), and the same :class:`strategies.edge.EdgeLayer`
decides, built from the same parameters and the models' label settings. It keeps
the decision layer's own vol-targeted size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from bot.events import Signal, timeframe_ms
from strategies.base import BarContext, Strategy
from strategies.edge import EdgeLayer, edge_policy, move_function
from strategies.labels import trailing_vol
from strategies.model_config import ModelSpec
from strategies.neural import horizon_label


class EdgeReplayStrategy(Strategy):
    def __init__(self, name: str, symbol: str, timeframe: str, ts: np.ndarray,
                 probs: Mapping[str, np.ndarray], spec: ModelSpec, decision: Mapping[str, Any],
                 history_ts: np.ndarray, history_close: np.ndarray, vol_days: float = 7.0) -> None:
        super().__init__(name, (symbol,), timeframe)
        mean = np.mean([np.asarray(p, dtype=np.float64) for p in probs.values()], axis=0)
        bars = max(1, int(round(vol_days * 86_400_000 / timeframe_ms(timeframe))))
        vol = dict(zip(np.asarray(history_ts).tolist(), trailing_vol(history_close, bars).tolist(), strict=True))
        self._rows = {int(t): (float(p), vol.get(int(t), float("nan")))
                      for t, p in zip(np.asarray(ts).tolist(), mean.tolist(), strict=True) if np.isfinite(p)}
        self.models = tuple(probs)
        self.layer = EdgeLayer(edge_policy(decision, spec.horizon),
                               move_function(spec.target, spec.horizon, spec.barrier_k, spec.barrier_floor,
                                             spec.cost),
                               timeframe, horizon_label(spec.horizon, timeframe))
        self.warmup = 1

    def evaluate(self, ctx: BarContext) -> Signal | None:
        row = self._rows.get(ctx.candle.ts)
        if row is None:
            return None
        p, vol = row
        d, annual = self.layer.decide(ctx.candle.symbol, p, vol, ctx.position)
        return self.layer.signal(self, ctx, d, p, annual, f"P={p:.3f} (mean of {', '.join(self.models)})")
