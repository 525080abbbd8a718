"""Choosing the decision layer's entry level by what the user gets, on a validation span only.

:func:`simulate` runs the decision layer (:func:`strategies.decision.decide_edge`)
over a span of forecasts as the Engine would trade it, long/flat: the exposure
decided at bar t's close earns the close-to-close return of bar t+1, and every
change of exposure pays half the round-trip cost per unit. :func:`select_enter_margin`
scores each candidate ``enter_margin`` by the annualised net return per unit of risk
(Sharpe of those net returns) and keeps the best; ties (typically "never trades")
go to the larger margin, so an uninformative span means trading less, not more.

Walk-forward calls it on each fold's validation forecasts (``enter_margin =
"validation"`` in a strategy's ``decision`` table); nothing is chosen on a test
period.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from strategies.decision import EdgePolicy, decide_edge
from strategies.signals import annualised_vol

MARGIN_GRID: tuple[float, ...] = (0.0, 0.0005, 0.001, 0.002, 0.004)


def simulate(p: np.ndarray, per_bar_vol: np.ndarray, close: np.ndarray, policy: EdgePolicy,
             move: Callable[[float], float], bar_ms: int) -> np.ndarray:
    """Net per-bar returns (len n - 1) of the long/flat decision layer over the span."""
    n = len(p)
    out = np.zeros(max(n - 1, 0))
    x, held = 0.0, 0
    for t in range(n - 1):
        held = held + 1 if x > 0 else 0
        v = float(per_bar_vol[t])
        annual = annualised_vol(v, bar_ms) if math.isfinite(v) else math.nan
        d = decide_edge(float(p[t]), move(v) if math.isfinite(v) else math.nan, annual, x, held, policy)
        if d.renewed:
            held = 0
        new = d.exposure if (x == 0 or d.exposure == 0) else x  # the Engine holds long/flat
        out[t] = new * (close[t + 1] / close[t] - 1.0) - abs(new - x) * policy.cost / 2.0
        x = new
    return out


def net_sharpe(returns: np.ndarray, bar_ms: int) -> float:
    """Annualised mean / std of net returns; 0 for a span without risk (no trade)."""
    if len(returns) < 2 or float(np.std(returns)) == 0.0:
        return 0.0
    return float(np.mean(returns) / np.std(returns, ddof=1) * math.sqrt(365 * 86_400_000 / bar_ms))


def select_enter_margin(p: np.ndarray, per_bar_vol: np.ndarray, close: np.ndarray, policy: EdgePolicy,
                        move: Callable[[float], float], bar_ms: int,
                        grid: Sequence[float] = MARGIN_GRID) -> tuple[float, dict[float, float]]:
    """The ``enter_margin`` of ``grid`` with the best validation net Sharpe, and every score."""
    scores = {}
    for m in grid:
        cand = replace(policy, enter_margin=m, exit_edge=min(policy.exit_edge, policy.cost + m))
        scores[m] = net_sharpe(simulate(p, per_bar_vol, close, cand, move, bar_ms), bar_ms)
    best = max(grid, key=lambda m: (round(scores[m], 9), m))
    return best, scores
