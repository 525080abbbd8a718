"""The decision layer: from calibrated forecasts to a position that pays its costs.

Pure functions of (forecast, current position, policy) -> decision, so every rule
is a truth table:

* **expected edge** of a long over the label horizon: ``(2 p - 1) * move``, where
  ``p`` is the calibrated P(up over the horizon) and ``move`` the size of the move
  that resolves the label (the barrier half-width of a triple-barrier model, or
  the mean absolute H-bar return ``sqrt(2/pi) * vol * sqrt(H)`` of a direction
  model). The **net edge** subtracts the round-trip cost.
* **hysteresis**: enter only when the net edge reaches ``enter_margin``; a held
  position exits when the gross edge falls below ``exit_edge`` (by default 0: the
  forecast no longer favours the position). Between the two, hold.
* **holding time**: no voluntary exit before ``min_hold_bars``; after
  ``max_hold_bars`` (the label horizon: the time-out of the bet) the position
  exits unless the entry condition holds afresh, which renews it.
* **volatility targeting**: the target exposure is ``target_vol / forecast vol``
  (annualised), capped at ``max_exposure``, times the bet size (a meta-label's
  calibrated probability; 1 without one). The risk gate caps it again.
* **no-trade band** (Gârleanu & Pedersen, 2013): a target within ``band`` of the
  current exposure is not traded; otherwise the exposure moves ``rate`` of the way
  to it. Exits (target 0) go all the way.

Every decision carries its reason (edge, cost, band, holding time), stored with
the signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@dataclass(frozen=True, slots=True)
class EdgePolicy:
    cost: float = 0.0032  # round-trip cost, fraction of notional (strategies.training.labels.round_trip_cost)
    enter_margin: float = 0.0005  # enter when edge - cost >= this
    exit_edge: float = 0.0  # a held position exits when the gross edge falls below this
    min_hold_bars: int = 6
    max_hold_bars: int = 24  # time-out: the label horizon
    band: float = 0.05  # no-trade band around the current exposure (fraction of equity)
    rate: float = 1.0  # part of the way to the target per trade (0, 1]
    target_vol: float = 0.5  # annualised volatility target of the position
    max_exposure: float = 1.0  # cap of the vol-targeted exposure (fraction of equity)

    def __post_init__(self) -> None:
        if self.cost < 0 or self.band < 0:
            raise ValueError("cost and band must be >= 0")
        if self.exit_edge > self.cost + self.enter_margin:
            raise ValueError("exit_edge must not exceed cost + enter_margin (the entry level): "
                             "a position would exit at once")
        if not 0 <= self.min_hold_bars <= self.max_hold_bars or self.max_hold_bars < 1:
            raise ValueError("need 0 <= min_hold_bars <= max_hold_bars and max_hold_bars >= 1")
        if not 0 < self.rate <= 1:
            raise ValueError(f"rate must be in (0, 1], got {self.rate}")
        if self.target_vol <= 0 or self.max_exposure <= 0:
            raise ValueError("target_vol and max_exposure must be > 0")


@dataclass(frozen=True, slots=True)
class EdgeDecision:
    exposure: float  # exposure to hold after this bar (fraction of equity)
    trade: bool  # the exposure changes
    edge: float  # expected gross log return of a long over the horizon
    net_edge: float  # edge - cost
    target: float  # target exposure before the band
    renewed: bool  # a timed-out position renewed by a fresh entry condition
    reason: str


def expected_edge(p_up: float, move: float) -> float:
    """Expected return of a long when up and down moves have size ``move``: ``(2p - 1) * move``."""
    return (2.0 * p_up - 1.0) * move


def direction_move(per_bar_vol: float, horizon: int) -> float:
    """Mean absolute H-bar log return under a normal model: ``sqrt(2/pi) * vol * sqrt(H)``."""
    return SQRT_2_OVER_PI * per_bar_vol * math.sqrt(horizon)


def vol_target_exposure(annual_vol: float, policy: EdgePolicy) -> float:
    """``target_vol / annual_vol`` capped at ``max_exposure``; 0 when the volatility is unknown."""
    if not math.isfinite(annual_vol) or annual_vol <= 0:
        return 0.0
    return min(policy.max_exposure, policy.target_vol / annual_vol)


def rebalance(current: float, target: float, policy: EdgePolicy) -> float:
    """The no-trade band and partial adjustment: the exposure to hold next."""
    if target <= 0 < current:
        return 0.0
    if abs(target - current) <= policy.band:
        return current
    return current + policy.rate * (target - current)


def decide_edge(
    p_up: float, move: float, annual_vol: float, exposure: float, held_bars: int,
    policy: EdgePolicy, bet: float = 1.0,
) -> EdgeDecision:
    """One bar's decision for a long/flat position (see the module docstring).

    ``exposure`` is the current fraction of equity held; ``held_bars`` how many bars
    it has been held (0 when flat); ``bet`` the meta-label bet size in [0, 1].
    """
    edge = expected_edge(p_up, move) if math.isfinite(p_up) and math.isfinite(move) else math.nan
    net = edge - policy.cost
    size = vol_target_exposure(annual_vol, policy) * min(max(bet, 0.0), 1.0)
    entry_ok = math.isfinite(net) and net >= policy.enter_margin and size > 0
    why = (f"edge {edge:.4%} - cost {policy.cost:.4%} = {net:.4%}" if math.isfinite(edge)
           else "no forecast")
    held = exposure > 0
    renewed = False
    if not held:
        target = size if entry_ok else 0.0
        why += (f" >= margin {policy.enter_margin:.4%}: enter" if entry_ok
                else f" < margin {policy.enter_margin:.4%}: stay flat" if size > 0 or not math.isfinite(net)
                else "; size 0 (bet or volatility): stay flat")
    elif held_bars < policy.min_hold_bars:
        target = exposure
        why += f"; held {held_bars}/{policy.min_hold_bars} bars: hold (minimum holding time)"
    elif held_bars >= policy.max_hold_bars and not entry_ok:
        target = 0.0
        why += f"; held {held_bars} bars >= time-out {policy.max_hold_bars}: exit"
    elif not math.isfinite(edge) or edge < policy.exit_edge:
        target = 0.0
        why += f"; edge below exit level {policy.exit_edge:.4%}: exit"
    else:
        renewed = held_bars >= policy.max_hold_bars
        target = size
        why += "; time-out renewed by a fresh entry edge: hold" if renewed else \
            f"; edge >= exit level {policy.exit_edge:.4%}: hold"
    new = rebalance(exposure, target, policy)
    if new == exposure and target != exposure and not (held and held_bars < policy.min_hold_bars):
        why += f"; target {target:.1%} within band {policy.band:.1%} of {exposure:.1%}: no trade"
    elif new != exposure:
        why += f"; exposure {exposure:.1%} -> {new:.1%} (target {target:.1%}, vol {annual_vol:.0%}/y)"
    return EdgeDecision(new, new != exposure, edge, net, target, renewed, why)
