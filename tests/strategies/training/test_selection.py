"""Choosing the entry level on a validation span by net-of-cost return per unit of risk."""

from __future__ import annotations

import numpy as np
import pytest

from strategies.decision import EdgePolicy
from strategies.edge import edge_policy
from strategies.training.selection import net_sharpe, select_enter_margin, simulate

BAR = 3_600_000
MOVE = lambda vol: 0.02  # noqa: E731  barrier half-width: edge = (2p - 1) * 2%


def test_simulate_charges_half_the_round_trip_per_change_and_earns_the_next_bar() -> None:
    policy = EdgePolicy(cost=0.004, enter_margin=0.0, min_hold_bars=0, max_hold_bars=24, band=0.0,
                        target_vol=10.0, max_exposure=1.0)
    p = np.array([0.7, 0.7, 0.3, 0.3])  # edge +0.8% (enter), hold, -0.8% (exit), flat
    close = np.array([100.0, 101.0, 102.01, 100.0])
    r = simulate(p, np.full(4, 0.01), close, policy, MOVE, BAR)
    assert r[0] == pytest.approx(0.01 - 0.002)  # enters at full exposure, pays one side
    assert r[1] == pytest.approx(0.01)  # held
    assert r[2] == pytest.approx(-0.002)  # exits: one side, no return
    assert net_sharpe(np.zeros(10), BAR) == 0.0


def test_selection_prefers_the_level_that_pays_and_the_larger_one_on_ties() -> None:
    rng = np.random.default_rng(0)
    n = 600
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    nxt = np.r_[np.diff(np.log(close)), 0.0]
    # informative when confident, noise when barely above 0.5
    p = np.where(rng.random(n) < 0.2, 0.5 + 0.3 * np.sign(nxt), 0.5 + rng.uniform(0.09, 0.1, n))  # net edge 0.04-0.08%
    policy = EdgePolicy(cost=0.0032, min_hold_bars=0, max_hold_bars=1, band=0.0, target_vol=10.0)
    best, scores = select_enter_margin(p, np.full(n, 0.01), close, policy, MOVE, BAR,
                                       grid=(0.0, 0.001, 0.004))
    assert best == 0.004 and scores[0.004] > scores[0.0]  # skipping the noisy small edges pays
    flat = np.full(n, 0.5)
    best, scores = select_enter_margin(flat, np.full(n, 0.01), close, policy, MOVE, BAR, grid=(0.0, 0.001))
    assert best == 0.001 and set(scores.values()) == {0.0}  # never trades: the larger margin


def test_a_trading_strategy_cannot_defer_its_entry_level_to_validation() -> None:
    with pytest.raises(ValueError, match="walkforward"):
        edge_policy({"enter_margin": "validation"}, 24)
