"""CPCV split sets never leak: purge and embargo asserted on the index sets; paths cover every row once."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.evaluation.cpcv import cpcv_paths, cpcv_splits, group_bounds, n_paths


@given(n_obs=st.integers(60, 400), n_groups=st.integers(3, 8), data=st.data(),
       horizon=st.integers(0, 12), embargo=st.integers(0, 10))
@settings(max_examples=60, deadline=None)
def test_splits_purge_and_embargo(n_obs: int, n_groups: int, data: st.DataObject, horizon: int,
                                  embargo: int) -> None:
    k = data.draw(st.integers(1, n_groups - 1))
    rng = np.random.default_rng(n_obs)
    rows = np.arange(n_obs)
    label_end = np.minimum(n_obs - 1, rows + rng.integers(0, horizon + 1, n_obs))  # variable spans
    splits = cpcv_splits(n_obs, n_groups, k, label_end, embargo)
    assert len(splits) == comb(n_groups, k)
    bounds = group_bounds(n_obs, n_groups)
    for s in splits:
        assert not np.intersect1d(s.train, s.test).size
        for g in s.test_groups:
            lo, hi = bounds[g]
            # no training label reads a test row
            assert not np.any((s.train <= hi - 1) & (label_end[s.train] >= lo))
            # nothing trains in the embargo after the test group
            assert not np.any((s.train >= hi) & (s.train < hi + embargo))
        # brute force over pairs: a row trains iff its label span overlaps no test label's span
        # (each test label's span stretched by the embargo), and is not a test row
        test, trains, tests = s.test, set(s.train.tolist()), set(s.test.tolist())
        for i in range(n_obs):
            leaks = np.any((i <= label_end[test] + embargo) & (label_end[i] >= test))
            assert (i in trains) == (not leaks and i not in tests), i


@pytest.mark.parametrize(("n", "k"), [(6, 2), (8, 3), (5, 1)])
def test_paths_cover_every_row_once(n: int, k: int) -> None:
    splits = cpcv_splits(300, n, k)
    paths = cpcv_paths(splits, n)
    assert len(paths) == n_paths(n, k) == comb(n - 1, k - 1)
    by_index = {s.index: s for s in splits}
    for path in paths:
        rows = np.concatenate([by_index[i].test[np.isin(by_index[i].test, np.arange(*group_bounds(300, n)[g]))]
                               for g, i in path])
        assert np.array_equal(np.sort(rows), np.arange(300))


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        cpcv_splits(100, 5, 5)
    with pytest.raises(ValueError):
        cpcv_splits(3, 5, 2)
    with pytest.raises(ValueError):
        cpcv_splits(100, 5, 2, label_end=np.arange(100) - 1)
