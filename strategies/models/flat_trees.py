"""A fitted scikit-learn histogram gradient-boosting model as flat arrays, every tree at once.

scikit-learn predicts one tree after another (a Python loop over ~150 ``TreePredictor``
calls, each behind its input validation): ~3-5 ms for the single row of a live bar.
:class:`FlatTrees` copies the fitted trees' nodes into one set of arrays and walks all
trees of a block of rows together, one vectorised step per tree level (~0.2 ms for one
row; faster than scikit-learn's one thread for hundreds of rows too).

It gives exactly scikit-learn's raw predictions, bit for bit:

* a split sends a row left when its value is ``<= num_threshold``, or when the value is
  NaN and the node's ``missing_go_to_left`` says so (``_predict_one_from_raw_data``);
  numeric thresholds on raw float64 values, no binning (prediction never bins). Here the
  NaN rule is folded into the data: a split whose NaNs go left reads a copy of its
  feature with NaN as ``-inf`` (``-inf <= t`` for every threshold), one whose NaNs go
  right reads the feature as is (``NaN <= t`` is false);
* the raw prediction is ``0 + baseline``, then each tree's leaf value added in boosting
  order (``_raw_predict``): a sequential ``cumsum``, never a pairwise sum.

Only what :class:`strategies.models.gbm.GBMModel` fits is supported: one tree per
iteration (binary classification, regression) over numeric features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

ROWS_PER_BLOCK = 256  # rows walked together: [rows, trees] temporaries that stay in cache


@dataclass(frozen=True, slots=True)
class FlatTrees:
    """All nodes of all trees. Trees are walked deepest first (``order``), so step ``s``
    only touches the ``steps[s]`` trees deeper than ``s``; a leaf's children are itself."""

    column: np.ndarray  # [nodes] intp: the column of the doubled rows a split reads (0 at leaves)
    threshold: np.ndarray  # [nodes] float64: go left when value <= threshold
    children: np.ndarray  # [2 * nodes] intp: 2i -> right child of node i, 2i + 1 -> left child
    value: np.ndarray  # [nodes] float64: leaf values (raw, link space)
    roots: np.ndarray  # [trees] intp: each tree's root, deepest tree first
    order: np.ndarray  # [trees] intp: boosting index of the tree walked at each position
    steps: tuple[int, ...]  # per level: how many (deepest) trees still walk
    baseline: float
    n_features: int

    @classmethod
    def of(cls, estimator: Any) -> FlatTrees:
        """The trees of a fitted ``HistGradientBoostingClassifier`` (binary) or ``...Regressor``."""
        if estimator.n_trees_per_iteration_ != 1:
            raise ValueError(f"{estimator.n_trees_per_iteration_} trees per iteration: only binary"
                             " classification and regression are supported")
        if estimator.is_categorical_ is not None:
            raise ValueError("categorical features are not supported")
        trees = [predictors[0].nodes for predictors in estimator._predictors]
        sizes = np.array([len(t) for t in trees], dtype=np.intp)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        depths = np.array([int(t["depth"][t["is_leaf"].astype(bool)].max()) for t in trees], dtype=np.intp)
        nodes = np.concatenate(trees)
        offset = np.repeat(starts, sizes)
        leaf = nodes["is_leaf"].astype(bool)
        own = np.arange(len(nodes), dtype=np.intp)
        left = np.where(leaf, own, nodes["left"].astype(np.intp) + offset)
        right = np.where(leaf, own, nodes["right"].astype(np.intp) + offset)
        n_features = int(estimator.n_features_in_)
        feature = nodes["feature_idx"].astype(np.intp)
        order = np.argsort(-depths, kind="stable").astype(np.intp)
        return cls(
            column=np.where(leaf, 0, np.where(nodes["missing_go_to_left"].astype(bool), feature + n_features,
                                              feature)),
            threshold=nodes["num_threshold"].astype(np.float64),
            children=np.stack([right, left], axis=1).reshape(-1),
            value=nodes["value"].astype(np.float64),
            roots=starts[order],
            order=order,
            steps=tuple(int((depths > s).sum()) for s in range(int(depths.max()))),
            baseline=float(np.asarray(estimator._baseline_prediction, dtype=np.float64).reshape(-1)[0]),
            n_features=n_features,
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Every field as an array (the registry's ``trees.npz``; :meth:`from_arrays` inverts it)."""
        return {"column": self.column, "threshold": self.threshold, "children": self.children,
                "value": self.value, "roots": self.roots, "order": self.order,
                "steps": np.asarray(self.steps, dtype=np.intp), "baseline": np.float64(self.baseline),
                "n_features": np.intp(self.n_features)}

    @classmethod
    def from_arrays(cls, a: Mapping[str, np.ndarray]) -> FlatTrees:
        """The trees :meth:`to_arrays` gave, the same values and dtypes (no scikit-learn needed)."""
        ints = {k: np.asarray(a[k], dtype=np.intp) for k in ("column", "children", "roots", "order")}
        return cls(threshold=np.asarray(a["threshold"], dtype=np.float64),
                   value=np.asarray(a["value"], dtype=np.float64),
                   steps=tuple(int(s) for s in a["steps"]), baseline=float(a["baseline"]),
                   n_features=int(a["n_features"]), **ints)

    @property
    def n_trees(self) -> int:
        return len(self.roots)

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """``[n, trees]`` (boosting order): the node each row ends at in each tree."""
        x = np.asarray(x, dtype=np.float64)  # what scikit-learn's validation converts to
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected rows [n, {self.n_features}], got {x.shape}")
        out = np.empty((len(x), self.n_trees), dtype=np.intp)
        for i in range(0, len(x), ROWS_PER_BLOCK):
            out[i:i + ROWS_PER_BLOCK, self.order] = self._walk(x[i:i + ROWS_PER_BLOCK])
        return out

    def _walk(self, x: np.ndarray) -> np.ndarray:
        """Leaves of a block of rows, trees in walking order."""
        doubled = np.concatenate([x, np.where(np.isnan(x), -np.inf, x)], axis=1).ravel()
        row = (np.arange(len(x), dtype=np.intp) * (2 * self.n_features))[:, None]
        nodes = np.tile(self.roots, (len(x), 1))
        for k in self.steps:
            at = nodes[:, :k]
            goes_left = doubled[row + self.column[at]] <= self.threshold[at]
            nodes[:, :k] = self.children[2 * at + goes_left]
        return nodes

    def staged_raw(self, x: np.ndarray) -> np.ndarray:
        """``[n, trees]``: column ``i`` is the raw prediction of the first ``i + 1`` trees
        (scikit-learn's ``_staged_raw_predict``; the last column is ``_raw_predict``)."""
        values = self.value[self.leaves(x)]
        first = np.full((len(values), 1), 0.0 + self.baseline)  # scikit-learn: zeros += baseline
        return np.cumsum(np.concatenate([first, values], axis=1), axis=1)[:, 1:]

    def raw(self, x: np.ndarray) -> np.ndarray:
        """``[n]`` raw predictions (link space), equal to scikit-learn's ``_raw_predict``."""
        return self.staged_raw(x)[:, -1]
