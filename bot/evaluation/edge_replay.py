"""Configured model strategies replayed on walk-forward forecasts: the decision layer, meta-labeling.

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
from strategies.decision import EdgePolicy
from strategies.edge import EdgeLayer, edge_policy, move_function
from strategies.meta import MetaDecider, trend_side
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
