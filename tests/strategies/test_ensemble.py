"""Ensemble voting: truth tables for k-of-n consensus, weights and decisions."""

from __future__ import annotations

import math

import pytest

from bot.core.events import Direction
from strategies.ensemble import Consensus, VotingRule, decide, log_loss_weights, vote
from strategies.signals import SignalPolicy

NAMES = ("lstm", "bilstm", "cnn_lstm", "transformer", "gbm")


def probs(*values: float) -> dict[str, float]:
    return dict(zip(NAMES, values, strict=False))


# (probabilities, k, threshold, expected consensus, long votes)
VOTES = [
    pytest.param((0.6, 0.6, 0.6, 0.6, 0.6), 4, 0.55, Consensus.LONG, 5, id="5of5-long"),
    pytest.param((0.6, 0.6, 0.6, 0.6, 0.4), 4, 0.57, Consensus.NONE, 4, id="4of5-long-mean-0.56-below-0.57"),
    pytest.param((0.7, 0.7, 0.7, 0.7, 0.4), 4, 0.55, Consensus.LONG, 4, id="4of5-long-mean-0.64"),
    pytest.param((0.7, 0.7, 0.7, 0.4, 0.4), 4, 0.55, Consensus.NONE, 3, id="3of5-no-consensus"),
    pytest.param((0.7, 0.7, 0.7, 0.4, 0.4), 3, 0.55, Consensus.LONG, 3, id="3of5-long-when-k3"),
    pytest.param((0.4, 0.4, 0.4, 0.4, 0.6), 4, 0.55, Consensus.FLAT, 1, id="4of5-flat"),
    pytest.param((0.45, 0.45, 0.45, 0.45, 0.45), 4, 0.55, Consensus.NONE, 0, id="5of5-flat-but-weak"),
    pytest.param((0.5, 0.5, 0.5, 0.5, 0.5), 4, 0.5, Consensus.FLAT, 0, id="exactly-0.5-votes-flat"),
    pytest.param((0.55, 0.55, 0.55, 0.55, 0.55), 5, 0.55, Consensus.LONG, 5, id="threshold-edge-inclusive"),
    pytest.param((0.5499, 0.5499, 0.5499, 0.5499, 0.5499), 5, 0.55, Consensus.NONE, 5, id="just-below-threshold"),
    pytest.param((0.9, 0.9, 0.9, math.nan, 0.9), 4, 0.55, Consensus.LONG, 4, id="nan-model-ignored"),
    pytest.param((0.9, 0.9, 0.9, math.nan, math.nan), 4, 0.55, Consensus.NONE, 3, id="missing-models-no-k"),
]


@pytest.mark.parametrize(("values", "k", "threshold", "expected", "longs"), VOTES)
def test_voting_truth_table(values, k, threshold, expected, longs) -> None:
    v = vote(probs(*values), VotingRule(k=k, n=5, threshold=threshold))
    assert v.consensus is expected
    assert v.long_votes == longs
    assert set(v.votes.values()) <= {"long", "flat"}


def test_combined_probability_is_weighted_mean() -> None:
    v = vote(probs(0.8, 0.4), VotingRule(k=1, n=2), {"lstm": 3.0, "bilstm": 1.0})
    assert v.probability == pytest.approx(0.7)
    assert v.weights == pytest.approx({"lstm": 0.75, "bilstm": 0.25})


@pytest.mark.parametrize(
    ("losses", "expected"),
    [
        pytest.param({"a": 0.68, "b": 0.69}, {"a": 0.8069, "b": 0.1931}, id="skill-over-coin-flip"),
        pytest.param({"a": 0.70, "b": 0.69}, {"a": 0.0, "b": 1.0}, id="worse-than-coin-gets-zero"),
        pytest.param({"a": 0.70, "b": 0.71}, {"a": 0.5, "b": 0.5}, id="nobody-skilled-equal"),
        pytest.param({"a": float("nan"), "b": 0.68}, {"a": 0.0, "b": 1.0}, id="unknown-loss-zero"),
    ],
)
def test_log_loss_weights(losses, expected) -> None:
    assert log_loss_weights(losses) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param(dict(k=6, n=5), id="k-above-n"),
        pytest.param(dict(k=0, n=5), id="k-zero"),
        pytest.param(dict(threshold=0.4), id="threshold-below-half"),
        pytest.param(dict(weighting="magic"), id="unknown-weighting"),
    ],
)
def test_bad_rules_rejected(rule) -> None:
    with pytest.raises(ValueError):
        VotingRule(**rule)


POLICY = SignalPolicy()  # act at 65, saturation 0.75, sizes 1..10, 4/5 -> 60%
RULE = VotingRule(k=4, n=5, threshold=0.55)


# (probabilities, position, expected direction, expected size, acted)
DECISIONS = [
    pytest.param((1.0,) * 5, 0.0, Direction.LONG, 10.0, True, id="5of5-certain-full-size"),
    pytest.param((1.0, 1.0, 1.0, 1.0, 0.0), 0.0, Direction.LONG, 6.0, True, id="4of5-certain-60pct"),
    pytest.param((0.56,) * 5, 0.0, Direction.LONG, 0.0, False, id="long-but-strength-62-not-acted"),
    pytest.param((0.6,) * 5, 0.0, Direction.LONG, 1 + 9 / 7, True, id="long-strength-70-acted"),
    pytest.param((0.6,) * 5, 1.0, Direction.LONG, 1 + 9 / 7, False, id="long-already-held-not-acted"),
    pytest.param((0.2,) * 5, 1.0, Direction.FLAT, 0.0, True, id="flat-consensus-exits"),
    pytest.param((0.2,) * 5, 0.0, Direction.FLAT, 0.0, False, id="flat-consensus-nothing-held"),
    pytest.param((0.7, 0.7, 0.7, 0.3, 0.3), 1.0, Direction.LONG, 0.0, False, id="no-consensus-holds-long"),
    pytest.param((0.7, 0.7, 0.7, 0.3, 0.3), 0.0, Direction.FLAT, 0.0, False, id="no-consensus-stays-flat"),
]


@pytest.mark.parametrize(("values", "position", "direction", "size", "acted"), DECISIONS)
def test_decision_truth_table(values, position, direction, size, acted) -> None:
    d = decide(vote(probs(*values), RULE), RULE, POLICY, position)
    assert (d.direction, d.acted) == (direction, acted)
    assert d.size_pct == pytest.approx(size)


def test_no_long_exit_rule_exits_when_consensus_lost() -> None:
    v = vote(probs(0.7, 0.7, 0.7, 0.3, 0.3), RULE)
    assert decide(v, RULE, POLICY, 1.0, exit_rule="no_long").direction is Direction.FLAT
    assert decide(v, RULE, POLICY, 1.0, exit_rule="consensus").direction is Direction.LONG


def test_decision_risk_scales_size_and_is_reported() -> None:
    v = vote(probs(*(1.0,) * 5), RULE)
    calm = decide(v, RULE, POLICY, 0.0, annual_vol=0.3)
    wild = decide(v, RULE, POLICY, 0.0, annual_vol=1.2)
    assert (calm.risk, wild.risk) == ("low", "high")
    assert calm.size_pct == pytest.approx(10.0)
    assert wild.size_pct == pytest.approx(5.0)
    assert "risk high" in wild.reason
