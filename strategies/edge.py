"""The decision layer inside a model strategy: per-symbol holding state, forecast -> Signal.

:class:`EdgeLayer` turns one bar's calibrated P(up over the label horizon) and
volatility forecast into a long/flat :class:`~bot.core.events.Signal` through the pure
rules of :mod:`strategies.decision`. It keeps, per symbol, how long the position
has been held and the exposure it decided; both are re-derived from the position
the Engine reports (a stop-out or a refused entry resets them), so the layer
never assumes a trade happened.

The Engine trades long/flat: an exposure change while already long (a resize the
band lets through) is recorded in the reason but not traded; entries are sized to
the decided exposure and exits close the position.

``strength`` of an edge signal is ``50 + 25 * edge / (cost + enter_margin)``
clipped to 0..100: 75 at the entry level, 100 at twice it, so the risk gate's
``min_strength`` (65) passes what the layer decided to enter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from bot.core.events import Direction, Signal, timeframe_ms
from strategies.base import BarContext, Strategy
from strategies.decision import EdgeDecision, EdgePolicy, decide_edge
from strategies.signals import annualised_vol, risk_level

POLICY_KEYS = frozenset(f.name for f in fields(EdgePolicy))


def edge_policy(params: Mapping[str, Any], horizon: int) -> EdgePolicy:
    """An :class:`EdgePolicy` from a strategy's ``decision`` table; holding times default to the
    label horizon (time-out after H bars, minimum H / 4)."""
    unknown = set(params) - POLICY_KEYS
    if unknown:
        raise ValueError(f"decision: unknown key(s) {sorted(unknown)}; accepted: {sorted(POLICY_KEYS)}")
    if params.get("enter_margin") == "validation":
        raise ValueError("decision.enter_margin = 'validation' is chosen by walkforward/evaluate on each "
                         "fold's validation span; a strategy that trades needs a number")
    kw = dict(params)
    kw.setdefault("max_hold_bars", horizon)
    kw.setdefault("min_hold_bars", min(int(kw["max_hold_bars"]), max(1, horizon // 4)))
    return EdgePolicy(**kw)


def edge_strength(edge: float, policy: EdgePolicy) -> float:
    if not math.isfinite(edge):
        return 0.0
    level = policy.cost + policy.enter_margin
    return float(min(100.0, max(0.0, 50.0 + 25.0 * edge / level))) if level > 0 else 100.0


@dataclass(slots=True)
class _Held:
    bars: int = 0
    exposure: float = 0.0


class EdgeLayer:
    """Decision-layer state of one strategy (see the module docstring)."""

    def __init__(self, policy: EdgePolicy, move: Callable[[float], float], timeframe: str,
                 horizon_label: str) -> None:
        self.policy, self.move, self.horizon = policy, move, horizon_label
        self.bar_ms = timeframe_ms(timeframe)
        self._held: dict[str, _Held] = {}

    def decide(self, symbol: str, p_up: float, per_bar_vol: float, position: float,
               bet: float = 1.0) -> tuple[EdgeDecision, float]:
        """The bar's decision and the annualised volatility it used; updates the holding state."""
        st = self._held.setdefault(symbol, _Held())
        annual = annualised_vol(per_bar_vol, self.bar_ms) if math.isfinite(per_bar_vol) else math.nan
        if position > 0:
            st.bars += 1
            if st.exposure <= 0:  # held before this process saw it decide (a restart)
                st.exposure = min(self.policy.max_exposure, self.policy.target_vol / annual) \
                    if math.isfinite(annual) and annual > 0 else self.policy.max_exposure
        else:
            st.bars, st.exposure = 0, 0.0
        move = self.move(per_bar_vol) if math.isfinite(per_bar_vol) else math.nan
        d = decide_edge(p_up, move, annual, st.exposure, st.bars, self.policy, bet)
        if d.renewed:
            st.bars = 0
        st.exposure = d.exposure
        return d, annual

    def signal(self, strategy: Strategy, ctx: BarContext, d: EdgeDecision, p_up: float,
               annual: float, detail: str = "") -> Signal:
        held = ctx.position > 0
        direction = Direction.LONG if d.exposure > 0 else Direction.FLAT
        reason = d.reason
        if held and d.exposure > 0 and d.trade:
            reason += " (resize not traded: the Engine holds long/flat)"
        return strategy.signal(
            ctx, direction, round(edge_strength(d.edge, self.policy), 4),
            reason=reason + (f"; {detail}" if detail else ""),
            size_pct=round(min(100.0, d.exposure * 100.0), 4) if direction is Direction.LONG else 0.0,
            probability=round(p_up, 6) if math.isfinite(p_up) else None, horizon=self.horizon,
            risk_level=risk_level(annual if math.isfinite(annual) else None),
        )
