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

:class:`NetScore` is the same yardstick for the models themselves (``select_by =
"net_return"`` in ``[[models]]``): the training epoch / number of boosting rounds
kept by early stopping, and the calibration (temperature, isotonic or none), are
the ones whose validation forecasts, traded by the decision layer at a priori
settings (:func:`selection_policy`), earn the most net of costs per unit of risk.
Ties (e.g. no candidate ever clears the cost) fall back to the validation log loss
and to the configured calibration.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from bot.core.events import timeframe_ms
from strategies.models.calibration import fit_calibrator
from strategies.decision import EdgePolicy, decide_edge
from strategies.training.labels import move_function
from strategies.training.labels import trailing_vol
from strategies.models.spec import ModelSpec
from strategies.signals import annualised_vol

CALIBRATIONS: tuple[str, ...] = ("temperature", "isotonic", "none")

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


def selection_policy(cost: float, horizon: int) -> EdgePolicy:
    """The decision layer the models are selected with, fixed a priori: the configured round-trip
    cost, entry at any positive net edge (the most trades a span offers, so the most evidence),
    exit below a zero edge, holding times from the label horizon, a 5% band, 50%/yr vol target."""
    hold = max(1, horizon)
    return EdgePolicy(cost=cost, enter_margin=0.0, exit_edge=0.0, min_hold_bars=min(hold, max(1, hold // 4)),
                      max_hold_bars=hold, band=0.05, target_vol=0.5)


@dataclass(frozen=True, slots=True)
class NetScore:
    """Net-of-cost return per unit of risk of the decision layer over one validation span.

    Arrays are per validation window, in time order: ``y`` its label (to fit calibrators on),
    ``close`` and ``vol`` the close and per-bar volatility forecast at its decision bar."""

    y: np.ndarray
    close: np.ndarray
    vol: np.ndarray
    policy: EdgePolicy
    move: Callable[[float], float]
    bar_ms: int
    calibration: str = "temperature"

    def of_probabilities(self, p: np.ndarray) -> float:
        return net_sharpe(simulate(np.asarray(p, dtype=np.float64), self.vol, self.close, self.policy,
                                   self.move, self.bar_ms), self.bar_ms)

    def of_logits(self, logits: np.ndarray, kind: str | None = None) -> float:
        """Score raw outputs as they would be traded: calibrated on this span first."""
        cal = fit_calibrator(kind or self.calibration, logits, self.y)
        return self.of_probabilities(cal(logits))

    def choose_calibration(self, logits: np.ndarray,
                           kinds: Sequence[str] = CALIBRATIONS) -> tuple[str, dict[str, float]]:
        """The calibration kind whose cross-fitted forecasts score best: each half of the span is
        calibrated on the other half (a calibrator never scores the rows it was fitted on); ties go
        to the configured kind."""
        z = np.asarray(logits, dtype=np.float64)
        half = len(z) // 2
        scores: dict[str, float] = {}
        for kind in kinds:
            if half < 20:
                scores[kind] = 0.0
                continue
            first = fit_calibrator(kind, z[half:], self.y[half:])(z[:half])
            second = fit_calibrator(kind, z[:half], self.y[:half])(z[half:])
            scores[kind] = self.of_probabilities(np.concatenate([first, second]))
        best = max(kinds, key=lambda k: (round(scores[k], 9), k == self.calibration))
        return best, scores


@dataclass(frozen=True, slots=True)
class PriceSeries:
    """Per row of a history: the close and the per-bar volatility forecast the decision layer
    reads (trailing realised), to score a model's validation forecasts by (:meth:`score`)."""

    close: np.ndarray
    vol: np.ndarray
    bar_ms: int

    @classmethod
    def of(cls, arrays: Mapping[str, np.ndarray], timeframe: str, vol_days: float = 7.0) -> PriceSeries:
        """A history's closes and the decision layer's default volatility forecast (trailing
        ``vol_days`` realised)."""
        bar_ms = timeframe_ms(timeframe)
        close = np.asarray(arrays["close"], dtype=np.float64)
        return cls(close, trailing_vol(close, max(1, round(vol_days * 86_400_000 / bar_ms))), bar_ms)

    def score(self, spec: ModelSpec, rows: np.ndarray, y: np.ndarray) -> NetScore:
        """The :class:`NetScore` of the windows ending at ``rows`` (labels ``y``) for ``spec``."""
        return NetScore(np.asarray(y, dtype=np.float64), self.close[rows], self.vol[rows],
                        selection_policy(spec.cost, spec.horizon),
                        move_function(spec.target, spec.horizon, spec.barrier_k, spec.barrier_floor, spec.cost),
                        self.bar_ms, spec.calibration)
