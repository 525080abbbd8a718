"""Combinatorial purged cross-validation with embargo (López de Prado, 2018, ch. 7 and 12).

The observations are cut into ``n_groups`` contiguous groups; every choice of
``n_test_groups`` of them is one split's test set, the rest its training set.
Training observations whose label span overlaps the span of a test group's
labels are purged (before the group: their label reads it; after it: a test label
reads them), and those in the ``embargo`` rows after the test labels end are
dropped (serial correlation leaks forward). Each group is tested in ``C(n_groups - 1,
n_test_groups - 1)`` splits; taking the j-th of them for every group gives path j:
a complete out-of-sample history, so a strategy gets a distribution of Sharpe
ratios over paths instead of the single number a walk-forward gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np


@dataclass(frozen=True, slots=True)
class Split:
    index: int
    test_groups: tuple[int, ...]
    train: np.ndarray  # observation rows, purged and embargoed
    test: np.ndarray


def group_bounds(n_obs: int, n_groups: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each contiguous group (sizes differ by at most one)."""
    if n_groups < 2 or n_obs < n_groups:
        raise ValueError(f"cannot cut {n_obs} observations into {n_groups} groups")
    edges = np.linspace(0, n_obs, n_groups + 1).round().astype(int)
    return [(int(edges[g]), int(edges[g + 1])) for g in range(n_groups)]


def cpcv_splits(n_obs: int, n_groups: int, n_test_groups: int,
                label_end: np.ndarray | None = None, embargo: int = 0) -> list[Split]:
    """Every split of CPCV(``n_groups``, ``n_test_groups``).

    ``label_end[i]`` is the last row observation ``i``'s label reads (``i`` for a
    label known at its own bar, ``i + h`` for an h-bar return, the first barrier
    touch for a triple-barrier label); default ``i``.
    """
    if not 1 <= n_test_groups < n_groups:
        raise ValueError("n_test_groups must be between 1 and n_groups - 1")
    if embargo < 0:
        raise ValueError("embargo must be >= 0")
    rows = np.arange(n_obs)
    end = rows if label_end is None else np.asarray(label_end, dtype=np.int64)
    if len(end) != n_obs or np.any(end < rows):
        raise ValueError("label_end must have one entry per observation, each >= its row")
    bounds = group_bounds(n_obs, n_groups)
    splits = []
    for k, groups in enumerate(combinations(range(n_groups), n_test_groups)):
        keep = np.ones(n_obs, dtype=bool)
        for g in groups:
            lo, hi = bounds[g]
            reach = int(end[lo:hi].max()) + embargo  # the test labels read up to here, + embargo
            # purge: a training label whose span [i, end[i]] overlaps the test labels' span [lo, reach]
            # (before the group: it reads into it; after it: the test labels read it, or it is embargoed)
            keep &= ~((rows <= reach) & (end >= lo))
        test = np.concatenate([rows[bounds[g][0]:bounds[g][1]] for g in groups])
        splits.append(Split(k, groups, rows[keep], test))
    return splits


def n_paths(n_groups: int, n_test_groups: int) -> int:
    return comb(n_groups - 1, n_test_groups - 1)


def cpcv_paths(splits: list[Split], n_groups: int) -> list[list[tuple[int, int]]]:
    """Path j = for each group g, the (g, split index) of the j-th split that tests g."""
    by_group: dict[int, list[int]] = {g: [] for g in range(n_groups)}
    for s in splits:
        for g in s.test_groups:
            by_group[g].append(s.index)
    counts = {len(v) for v in by_group.values()}
    if len(counts) != 1:
        raise ValueError("splits do not test every group equally often")
    return [[(g, by_group[g][j]) for g in range(n_groups)] for j in range(counts.pop())]


def path_summary(sharpes: list[float | None]) -> dict[str, object]:
    """The distribution of a strategy's Sharpe ratio over the CPCV paths (a missing one is NaN)."""
    x = np.array([np.nan if v is None else v for v in sharpes], dtype=np.float64)
    ok = x[np.isfinite(x)]
    stat = (lambda f: float(f(ok))) if len(ok) else (lambda f: float("nan"))
    return {"paths": len(x), "sharpe": x.tolist(), "mean": stat(np.mean), "median": stat(np.median),
            "std": float(np.std(ok, ddof=1)) if len(ok) > 1 else float("nan"),
            "min": stat(np.min), "max": stat(np.max),
            "share_positive": float(np.mean(ok > 0)) if len(ok) else float("nan")}
