"""Meta-labeling (López de Prado 2018, ch. 3.6; Joubert 2022): a primary side, a secondary bet size.

* **Primary**: a simple trend rule, long while the ``fast``-bar SMA of the closes is
  above the ``slow``-bar SMA (computed from closes up to the bar: causal).
* **Meta-label** (training, :func:`strategies.training.labels.meta_labels`): for every bar where the primary is
  long, "did a long opened at this close make money after costs": the triple-barrier
  trade from that bar (barriers at k x forecast vol, floored at m x cost, time-out H)
  resolves with a log return above the round-trip cost -> 1, else 0; bars where the
  primary is flat have no label. Only the label looks ahead (by design); the primary
  side and the model's inputs at bar t use nothing after t (tested).
* **Secondary**: any P(up) classifier trained on that target (``target = "meta_trend"``
  in ``[[models]]``); its calibrated probability q sets the bet size
  ``2 Phi((q - 0.5) / sqrt(q (1 - q))) - 1`` (AFML 10.1) and vetoes the entry below
  ``min_probability``. The secondary never trades alone: without a primary long there
  is no position.

:class:`MetaLabeled` is the strategy (``kind = "meta_labeled"``): entries when the
primary turns or is long and the secondary agrees, sized by volatility targeting x
bet size; exits when the primary goes flat.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from statistics import NormalDist

import numpy as np

from bot.core.events import Direction, Signal, timeframe_ms
from strategies.base import BarContext, Strategy
from strategies.decision import EdgePolicy, vol_target_exposure
from strategies.neural import NeuralEnsemble
from strategies.predictor import ModelHolder
from strategies.signals import annualised_vol, risk_level


def bet_size(q: float, min_probability: float = 0.5) -> float:
    """AFML's bet size from the secondary's probability; 0 (veto) below ``min_probability``."""
    if not math.isfinite(q) or q < min_probability or q <= 0.5:
        return 0.0
    if q >= 1.0:
        return 1.0
    return 2.0 * NormalDist().cdf((q - 0.5) / math.sqrt(q * (1.0 - q))) - 1.0


class MetaDecider:
    """The pure entry/exit rule of a meta-labeled strategy with its per-symbol trend state."""

    def __init__(self, fast: int, slow: int, min_probability: float, policy: EdgePolicy, bar_ms: int) -> None:
        if not 1 <= fast < slow:
            raise ValueError(f"need 1 <= fast < slow, got {fast}/{slow}")
        self.fast, self.slow, self.min_probability, self.policy, self.bar_ms = (
            fast, slow, min_probability, policy, bar_ms)

    def decide(self, primary_long: bool, q: float, per_bar_vol: float,
               held: bool) -> tuple[Direction, float, str]:
        """(direction, exposure 0..max_exposure, reason)."""
        annual = annualised_vol(per_bar_vol, self.bar_ms) if math.isfinite(per_bar_vol) else math.nan
        if not primary_long:
            return Direction.FLAT, 0.0, f"primary flat (SMA {self.fast} <= SMA {self.slow}): no position"
        if held:
            return Direction.LONG, 0.0, f"primary long, held; secondary q={q:.3f}"
        bet = bet_size(q, self.min_probability)
        if bet <= 0:
            return Direction.FLAT, 0.0, (f"primary long; secondary q={q:.3f} < {max(0.5, self.min_probability):.3f}:"
                                         " vetoed")
        size = vol_target_exposure(annual, self.policy) * bet
        return (Direction.LONG, size, f"primary long; secondary q={q:.3f} -> bet {bet:.2f} x vol target "
                f"{self.policy.target_vol:.0%}/{annual:.0%} = exposure {size:.1%}")


class MetaLabeled(Strategy):
    """A trend rule filtered and sized by a meta-labeling model (see the module docstring)."""

    def __init__(self, name: str, symbols: tuple[str, ...], timeframe: str, holders: Mapping[str, ModelHolder],
                 fast: int = 20, slow: int = 50, min_probability: float = 0.5,
                 target_vol: float = 0.5, max_exposure: float = 1.0, vol_days: float = 7.0) -> None:
        super().__init__(name, symbols, timeframe)
        self.secondary = NeuralEnsemble(f"{name}.secondary", symbols, timeframe, holders, vote_k=1,
                                        threshold=0.5, explain="none", vol_days=vol_days)
        self.rule = MetaDecider(fast, slow, min_probability,
                                EdgePolicy(target_vol=target_vol, max_exposure=max_exposure),
                                timeframe_ms(timeframe))
        self._closes: dict[str, deque[float]] = {}
        self.warmup = 1

    def evaluate(self, ctx: BarContext) -> Signal | None:
        closes = self._closes.setdefault(ctx.candle.symbol, deque(maxlen=self.rule.slow))
        closes.append(ctx.candle.close)
        inner = self.secondary.evaluate(ctx)  # keeps the secondary's buffers current every bar
        if inner is None or inner.probability is None or len(closes) < self.rule.slow:
            return None
        c = np.asarray(closes)
        primary = bool(c[-self.rule.fast:].mean() > c.mean())
        per_bar_vol = self.secondary.last_vol(ctx.candle.symbol)
        direction, exposure, why = self.rule.decide(primary, inner.probability, per_bar_vol, ctx.position > 0)
        annual = annualised_vol(per_bar_vol, self.rule.bar_ms) if math.isfinite(per_bar_vol) else None
        return self.signal(ctx, direction, 100.0 if exposure > 0 else 50.0, reason=why,
                           size_pct=round(min(100.0, exposure * 100.0), 4), probability=inner.probability,
                           horizon=self.secondary.horizon, risk_level=risk_level(annual))
