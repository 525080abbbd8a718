"""Ensemble voting: n models each give P(up over the horizon); k of n must agree.

Rule (defaults: k = 4 of n = 5, threshold 0.55):

* a model votes **long** when its P(up) > 0.5, **flat** otherwise;
* **long** consensus: at least ``k`` long votes AND the combined probability
  ``>= threshold``;
* **flat** consensus: at least ``k`` flat votes AND combined ``<= 1 - threshold``;
* anything else is **no consensus**: the strategy keeps whatever it holds.

The combined probability is the weighted mean of the model probabilities;
weights are equal, or derived from validation log loss (``log_loss``): a
model's weight is its skill over a coin flip, ``max(ln 2 - L, 0)``, normalised;
if no model beats a coin flip the weights fall back to equal. Votes are counted
one per model regardless of weights. ``k`` applies to the models that produced
a probability: with models missing, k is still required (fewer voters cannot
reach consensus more easily).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from bot.core.events import Direction
from strategies.signals import (
    SignalPolicy,
    agreement_scale,
    confidence_interval,
    recommended_size,
    risk_level,
    strength_from_probability,
)

LN2 = math.log(2.0)
EXIT_RULES = ("consensus", "no_long")


class Consensus(str, Enum):
    LONG = "long"
    FLAT = "flat"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class VotingRule:
    k: int = 4
    n: int = 5
    threshold: float = 0.55
    weighting: str = "equal"  # equal | log_loss

    def __post_init__(self) -> None:
        if not 1 <= self.k <= self.n:
            raise ValueError(f"voting rule needs 1 <= k <= n, got k={self.k}, n={self.n}")
        if not 0.5 <= self.threshold < 1.0:
            raise ValueError(f"threshold must be in [0.5, 1), got {self.threshold}")
        if self.weighting not in ("equal", "log_loss"):
            raise ValueError(f"weighting must be 'equal' or 'log_loss', got {self.weighting!r}")


@dataclass(frozen=True, slots=True)
class Vote:
    """Outcome of one ensemble vote."""

    consensus: Consensus
    probability: float  # weighted mean P(up)
    long_votes: int
    flat_votes: int
    n_models: int
    votes: dict[str, str]  # model -> "long" | "flat"
    probs: dict[str, float]
    weights: dict[str, float]

    @property
    def agreeing(self) -> int:
        """Votes on the side of the consensus (or the majority side without one)."""
        if self.consensus is Consensus.LONG:
            return self.long_votes
        if self.consensus is Consensus.FLAT:
            return self.flat_votes
        return max(self.long_votes, self.flat_votes)

    def describe(self) -> str:
        parts = ", ".join(f"{m}={p:.3f}" for m, p in self.probs.items())
        return (f"{self.consensus.value}: {self.long_votes}/{self.n_models} long, "
                f"P={self.probability:.3f} ({parts})")


def log_loss_weights(losses: Mapping[str, float]) -> dict[str, float]:
    """Normalised skill weights ``max(ln 2 - L, 0)``; equal when no model beats ln 2."""
    skill = {m: max(LN2 - float(v), 0.0) if math.isfinite(float(v)) else 0.0 for m, v in losses.items()}
    total = sum(skill.values())
    if total <= 0:
        return {m: 1.0 / len(losses) for m in losses} if losses else {}
    return {m: s / total for m, s in skill.items()}


def vote(
    probs: Mapping[str, float], rule: VotingRule, weights: Mapping[str, float] | None = None
) -> Vote:
    """Apply ``rule`` to per-model probabilities (non-finite ones are ignored)."""
    clean = {m: float(p) for m, p in probs.items() if p is not None and math.isfinite(float(p))}
    if not clean:
        return Vote(Consensus.NONE, math.nan, 0, 0, 0, {}, {}, {})
    w = {m: float(weights.get(m, 0.0)) if weights else 1.0 for m in clean}
    total = sum(w.values())
    if total <= 0:
        w = {m: 1.0 for m in clean}
        total = float(len(clean))
    w = {m: v / total for m, v in w.items()}
    p = sum(clean[m] * w[m] for m in clean)
    votes = {m: ("long" if q > 0.5 else "flat") for m, q in clean.items()}
    n_long = sum(v == "long" for v in votes.values())
    n_flat = len(votes) - n_long
    if n_long >= rule.k and p >= rule.threshold:
        consensus = Consensus.LONG
    elif n_flat >= rule.k and p <= 1.0 - rule.threshold:
        consensus = Consensus.FLAT
    else:
        consensus = Consensus.NONE
    return Vote(consensus, p, n_long, n_flat, len(clean), votes, clean, w)


# -- from a vote to a decision -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Decision:
    """What the strategy recommends for one bar (the Signal's decision fields)."""

    direction: Direction
    strength: float
    size_pct: float
    acted: bool  # the recommendation changes the position (entry or exit)
    confidence: tuple[float, float]
    risk: str
    reason: str


def decide(
    v: Vote,
    rule: VotingRule,
    policy: SignalPolicy,
    position: float,
    annual_vol: float | None = None,
    exit_rule: str = "consensus",
) -> Decision:
    """Turn a vote into direction, strength, size and risk.

    * long consensus: LONG; size from strength, agreement (scaled between k/n and
      n/n) and risk; size 0 (not acted) when strength < ``act_strength``;
    * flat consensus: FLAT (exits a held position);
    * no consensus: keep the current position (``exit_rule = "no_long"`` exits a
      held position as soon as the long consensus is lost).
    """
    if exit_rule not in EXIT_RULES:
        raise ValueError(f"exit_rule must be one of {EXIT_RULES}, got {exit_rule!r}")
    if not v.probs:
        raise ValueError("cannot decide without any model probability")
    risk = risk_level(annual_vol, policy.risk_low_below, policy.risk_high_above)
    weights = [v.weights[m] for m in v.probs]
    ci = confidence_interval(list(v.probs.values()), weights, policy.ci_method, policy.ci_level,
                             policy.bootstrap_samples)
    strength = strength_from_probability(v.probability, policy.saturation)
    held = position > 0
    why = v.describe()
    if risk:
        why += f"; risk {risk}" + (f" (vol {annual_vol:.0%}/y)" if annual_vol is not None else "")
    if v.consensus is Consensus.LONG:
        scale = agreement_scale(v.long_votes, rule.n, rule.k, policy.min_agreement_scale)
        size = recommended_size(strength, policy, scale, risk)
        if size <= 0:
            why += f"; not acted: strength {strength:.1f} < {policy.act_strength:g}" if (
                strength < policy.act_strength) else "; not acted: size 0 at this risk"
        return Decision(Direction.LONG, strength, size, size > 0 and not held, ci, risk, why)
    if v.consensus is Consensus.FLAT or (exit_rule == "no_long" and held):
        return Decision(Direction.FLAT, strength, 0.0, held, ci, risk, why)
    keep = Direction.LONG if held else Direction.FLAT
    return Decision(keep, strength, 0.0, False, ci, risk, why + "; no consensus: hold")


@dataclass(frozen=True, slots=True)
class VotingSetup:
    """A neural strategy's voting parameters, as its ``params`` give them (no decision table)."""

    rule: VotingRule
    policy: SignalPolicy
    exit_rule: str


def voting_setup(
    n_models: int, vote_k: int | None = None, threshold: float = 0.55, weighting: str = "equal",
    exit_rule: str = "consensus", act_strength: float = 65.0, saturation: float = 0.75,
    min_size_pct: float = 1.0, max_size_pct: float = 10.0, min_agreement_scale: float = 0.6,
    ci_method: str = "spread", ci_level: float = 0.9, risk_low_below: float = 0.50,
    risk_high_above: float = 0.85, risk_multipliers: Mapping[str, float] | None = None,
) -> VotingSetup:
    """The rule and signal policy of ``n_models`` voters (the live strategy and its walk-forward
    replay build them here, from the same parameters)."""
    if exit_rule not in EXIT_RULES:
        raise ValueError(f"exit_rule must be one of {EXIT_RULES}, got {exit_rule!r}")
    mult = {"low": 1.0, "medium": 0.75, "high": 0.5, "": 1.0}
    mult.update(risk_multipliers or {})
    rule = VotingRule(min(4, n_models) if vote_k is None else vote_k, n_models, threshold, weighting)
    policy = SignalPolicy(act_strength, saturation, min_size_pct, max_size_pct, min_agreement_scale,
                          ci_method, ci_level, risk_low_below=risk_low_below, risk_high_above=risk_high_above,
                          risk_multipliers=mult)
    return VotingSetup(rule, policy, exit_rule)
