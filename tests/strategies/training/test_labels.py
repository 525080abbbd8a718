"""Cost-aware labels against hand-computed cases; uniqueness weights against a worked example."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.training.labels import (
    DOWN,
    TIMEOUT,
    UP,
    BarrierSpec,
    average_uniqueness,
    binary_target,
    forward_return,
    net_return_beats_cost,
    round_trip_cost,
    triple_barrier,
    uniqueness_weights,
)


def test_round_trip_cost_is_both_sides_of_fee_slippage_and_half_spread() -> None:
    # 0.1% fee, 5 bps slippage, 2 bps spread (1 bp per fill): 2 x (10 + 5 + 1) bps
    assert round_trip_cost(0.001, 5.0, 2.0) == pytest.approx(0.0032)


def _prices(log_moves: list[float], p0: float = 100.0) -> np.ndarray:
    return p0 * np.exp(np.concatenate([[0.0], np.cumsum(log_moves)]))


def test_first_touch_decides_even_when_the_other_barrier_is_hit_later() -> None:
    # width = k * vol * sqrt(H) = 1 * 0.01 * 2 = 0.02 (cost floor 0); H = 4
    close = _prices([0.005, -0.026, 0.05, 0.0, 0.0, 0.0])
    spec = BarrierSpec(horizon=4, k=1.0, floor_multiple=0.0, cost=0.0)
    lab = triple_barrier(close, np.full(len(close), 0.01), spec)
    # row 0: path 0.005, -0.021 -> lower touched at row 2 first (upper at row 3 later)
    assert lab.y[0] == DOWN and lab.end[0] == 2
    assert lab.ret[0] == pytest.approx(-0.021)
    # row 1: path -0.026 -> lower at row 2
    assert lab.y[1] == DOWN and lab.end[1] == 2
    # row 2: path +0.05 -> upper at row 3
    assert lab.y[2] == UP and lab.end[2] == 3
    assert lab.width[0] == pytest.approx(0.02)


def test_time_out_after_h_bars_resolves_at_t_plus_h_with_its_return() -> None:
    close = _prices([0.004, -0.003, 0.002, 0.001, 0.0])
    spec = BarrierSpec(horizon=3, k=1.0, floor_multiple=0.0, cost=0.0)
    lab = triple_barrier(close, np.full(len(close), 0.01), spec)  # width 0.01*sqrt(3) = 0.0173
    assert lab.y[0] == TIMEOUT and lab.end[0] == 3
    assert lab.ret[0] == pytest.approx(0.003)
    assert binary_target(lab)[0] == 1.0  # a time-out above the entry counts as up
    # the last H rows have no full horizon: unknown
    assert np.isnan(lab.y[-3:]).all() and (lab.end[-3:] == -1).all()


def test_cost_floor_widens_barriers_when_volatility_is_small() -> None:
    # vol tiny: k*vol*sqrt(H) = 0.0002, floor 2 x 0.0032 = 0.0064
    close = _prices([0.003, 0.003, 0.003, 0.0])
    tight = BarrierSpec(horizon=3, k=1.0, floor_multiple=0.0, cost=0.0032)
    floored = BarrierSpec(horizon=3, k=1.0, floor_multiple=2.0, cost=0.0032)
    vol = np.full(len(close), 0.0001)
    a, b = triple_barrier(close, vol, tight), triple_barrier(close, vol, floored)
    assert a.y[0] == UP and a.end[0] == 1  # 0.003 >= 0.00017 at once
    assert b.width[0] == pytest.approx(0.0064)
    assert b.y[0] == UP and b.end[0] == 3  # 0.003, 0.006 < 0.0064; 0.009 at row 3
    assert b.ret[0] == pytest.approx(0.009)


def test_unknown_volatility_gives_no_label() -> None:
    close = _prices([0.01, 0.01, 0.01, 0.01])
    vol = np.array([np.nan, 0.01, 0.01, 0.01, 0.01])
    lab = triple_barrier(close, vol, BarrierSpec(horizon=2, floor_multiple=0.0))
    assert np.isnan(lab.y[0]) and lab.end[0] == -1 and lab.y[1] == UP


def test_forward_return_and_net_of_cost_class() -> None:
    close = np.array([100.0, 100.2, 100.5, 100.1, 101.0])
    fwd = forward_return(close, 2)
    assert fwd.y[0] == pytest.approx(math.log(100.5 / 100.0))
    assert fwd.end.tolist() == [2, 3, 4, -1, -1]
    net = net_return_beats_cost(close, 2, cost=0.0032)
    # +0.50% > 0.32%: 1; 100.2 -> 100.1: 0; 100.5 -> 101.0 (+0.4975%): 1
    assert net.y[:3].tolist() == [1.0, 0.0, 1.0]
    assert np.isnan(net.y[3:]).all()


def test_horizon_is_bounded() -> None:
    with pytest.raises(ValueError, match="1..168"):
        BarrierSpec(horizon=169)
    with pytest.raises(ValueError, match="1..168"):
        BarrierSpec(horizon=0)


def test_average_uniqueness_worked_example() -> None:
    # A: decided at row 0, reads rows 1..3; B: row 2, reads 3..4; C: row 4, reads 5..6.
    # concurrency by row: 1:1, 2:1, 3:2, 4:1, 5:1, 6:1
    # u_A = (1 + 1 + 1/2) / 3 = 0.8333; u_B = (1/2 + 1) / 2 = 0.75; u_C = 1
    u = average_uniqueness(np.array([0, 2, 4]), np.array([3, 4, 6]))
    assert u == pytest.approx([2.5 / 3, 0.75, 1.0])
    w = uniqueness_weights(np.array([0, 2, 4]), np.array([3, 4, 6]))
    assert w.mean() == pytest.approx(1.0)
    assert w == pytest.approx(np.array([2.5 / 3, 0.75, 1.0]) / np.mean([2.5 / 3, 0.75, 1.0]))


def test_one_bar_labels_that_do_not_overlap_are_all_unique() -> None:
    t = np.arange(10)
    assert average_uniqueness(t, t + 1) == pytest.approx(np.ones(10))
    with pytest.raises(ValueError):
        average_uniqueness(np.array([3]), np.array([3]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-0.05, 0.05), min_size=6, max_size=60), st.integers(1, 8),
       st.floats(0.2, 3.0))
def test_label_matches_a_direct_scan_and_ends_within_horizon(moves: list[float], h: int, k: float) -> None:
    close = _prices(moves)
    vol = np.full(len(close), 0.01)
    spec = BarrierSpec(horizon=h, k=k, floor_multiple=1.0, cost=0.003)
    lab = triple_barrier(close, vol, spec)
    lc = np.log(close)
    for t in range(len(close)):
        if t + h >= len(close):
            assert lab.end[t] == -1
            continue
        w = max(k * 0.01 * math.sqrt(h), 0.003)
        expect_cls, expect_end = TIMEOUT, t + h
        for j in range(t + 1, t + h + 1):
            r = lc[j] - lc[t]
            if r >= w or r <= -w:
                expect_cls, expect_end = (UP if r >= w else DOWN), j
                break
        assert (lab.y[t], lab.end[t]) == (expect_cls, expect_end)
        assert t < lab.end[t] <= t + h
        assert lab.ret[t] == pytest.approx(lc[expect_end] - lc[t])
