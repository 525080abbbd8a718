"""The decision layer as truth tables (hysteresis, holding time, band) and a turnover invariant."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.decision import (
    EdgePolicy,
    decide_edge,
    direction_move,
    expected_edge,
    rebalance,
    vol_target_exposure,
)

# cost 0.32%, enter at net edge >= 0.1% (gross >= 0.42%), exit below gross 0
POLICY = EdgePolicy(cost=0.0032, enter_margin=0.001, exit_edge=0.0, min_hold_bars=3, max_hold_bars=10,
                    band=0.05, rate=1.0, target_vol=0.5, max_exposure=1.0)
MOVE = 0.02  # barrier half-width: edge = (2p - 1) * 2%


def p_for(edge: float) -> float:
    return 0.5 + edge / (2 * MOVE)


def test_edge_and_vol_target_arithmetic() -> None:
    assert expected_edge(0.6, 0.02) == pytest.approx(0.004)
    assert direction_move(0.01, 4) == pytest.approx(math.sqrt(2 / math.pi) * 0.02)
    assert vol_target_exposure(1.0, POLICY) == pytest.approx(0.5)
    assert vol_target_exposure(0.25, POLICY) == 1.0  # capped
    assert vol_target_exposure(float("nan"), POLICY) == 0.0


@pytest.mark.parametrize(
    ("edge", "exposure", "held", "expect_exposure", "words"),
    [
        # flat: enter only at net edge >= margin (gross >= 0.42%)
        (0.0045, 0.0, 0, 0.5, "enter"),
        (0.0041, 0.0, 0, 0.0, "stay flat"),
        (0.0030, 0.0, 0, 0.0, "stay flat"),
        (-0.01, 0.0, 0, 0.0, "stay flat"),
        # held past the minimum: hold anywhere between the exit and entry levels ...
        (0.0041, 0.5, 5, 0.5, "hold"),
        (0.0001, 0.5, 5, 0.5, "hold"),
        # ... and exit below the exit level
        (-0.0001, 0.5, 5, 0.0, "exit"),
    ],
)
def test_hysteresis_truth_table(edge: float, exposure: float, held: int, expect_exposure: float,
                                words: str) -> None:
    d = decide_edge(p_for(edge), MOVE, 1.0, exposure, held, POLICY)  # vol 100%/y -> size 0.5
    assert d.exposure == pytest.approx(expect_exposure)
    assert d.trade == (expect_exposure != exposure)
    assert words in d.reason
    assert d.net_edge == pytest.approx(edge - 0.0032)


@pytest.mark.parametrize(
    ("edge", "held", "expect_exposure", "renewed", "words"),
    [
        (-0.01, 1, 0.5, False, "minimum holding time"),  # a strong exit signal waits
        (-0.01, 2, 0.5, False, "minimum holding time"),
        (-0.01, 3, 0.0, False, "exit"),  # minimum reached
        (0.001, 9, 0.5, False, "hold"),  # before the time-out: hold
        (0.001, 10, 0.0, False, "time-out"),  # time-out, no fresh entry edge: exit
        (0.0045, 10, 0.5, True, "renewed"),  # time-out with a fresh entry edge: renewed
    ],
)
def test_holding_time_truth_table(edge: float, held: int, expect_exposure: float, renewed: bool,
                                  words: str) -> None:
    d = decide_edge(p_for(edge), MOVE, 1.0, 0.5, held, POLICY)
    assert d.exposure == pytest.approx(expect_exposure)
    assert d.renewed is renewed
    assert words in d.reason


@pytest.mark.parametrize(
    ("current", "target", "rate", "expect"),
    [
        (0.0, 0.04, 1.0, 0.0),  # inside the band around flat: no entry
        (0.0, 0.06, 1.0, 0.06),  # outside: all the way
        (0.0, 0.60, 0.5, 0.30),  # partial adjustment: half-way
        (0.50, 0.53, 1.0, 0.50),  # resize within the band: no trade
        (0.50, 0.40, 0.5, 0.45),  # outside: half-way
        (0.50, 0.0, 0.5, 0.0),  # exits go all the way
        (0.03, 0.0, 1.0, 0.0),  # even from inside the band
    ],
)
def test_band_truth_table(current: float, target: float, rate: float, expect: float) -> None:
    policy = EdgePolicy(band=0.05, rate=rate)
    assert rebalance(current, target, policy) == pytest.approx(expect)


def test_band_is_reported_when_it_blocks_a_trade() -> None:
    small = EdgePolicy(cost=0.0032, enter_margin=0.001, band=0.6, target_vol=0.5)
    d = decide_edge(p_for(0.006), MOVE, 1.0, 0.0, 0, small)  # wants 50%, band 60%
    assert not d.trade and "within band" in d.reason


def test_bet_size_scales_and_vetoes() -> None:
    half = decide_edge(p_for(0.006), MOVE, 1.0, 0.0, 0, POLICY, bet=0.5)
    assert half.exposure == pytest.approx(0.25)
    veto = decide_edge(p_for(0.006), MOVE, 1.0, 0.0, 0, POLICY, bet=0.0)
    assert veto.exposure == 0.0 and "size 0" in veto.reason


def test_policy_rejects_an_exit_level_above_the_entry_level() -> None:
    with pytest.raises(ValueError, match="exit_edge"):
        EdgePolicy(cost=0.001, enter_margin=0.0, exit_edge=0.002)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=80), st.floats(0.0, 0.3),
       st.floats(0.05, 1.0), st.floats(0.0, 1.0))
def test_turnover_never_exceeds_what_the_band_allows(targets: list[float], band: float, rate: float,
                                                     start: float) -> None:
    """Turnover <= |start - first target| + total variation of the targets; every trade but an exit
    moves at least ``rate * band``; a target within the band never trades."""
    policy = EdgePolicy(band=band, rate=rate)
    x, turnover = start, 0.0
    for t in targets:
        new = rebalance(x, t, policy)
        if abs(t - x) <= band and not (t <= 0 < x):
            assert new == x
        if new != x and new != 0.0:
            assert abs(new - x) >= rate * band - 1e-12
        turnover += abs(new - x)
        x = new
    variation = sum(abs(b - a) for a, b in zip(targets, targets[1:]))
    assert turnover <= abs(start - targets[0]) + variation + 1e-9
