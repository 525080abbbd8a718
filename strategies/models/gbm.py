"""Gradient-boosting baseline on the same feature windows.

Choice: scikit-learn's ``HistGradientBoostingClassifier`` / ``Regressor`` rather
than LightGBM. It is the same histogram-based algorithm (LightGBM-style binning
and leaf-wise growth via ``max_leaf_nodes``) and is fast enough at our sizes
(~25k rows x ~150 columns trains in seconds), but it is already a dependency
(scikit-learn), ships pure wheels with no OpenMP/libgomp build issues, is
deterministic for a fixed ``random_state`` without subsampling, and pickles with
the rest of the sklearn stack. LightGBM would add a native dependency for no
measurable gain on this problem.

Inputs: the window's rows at ``spec.gbm_lags`` steps back from the last row plus
the window mean of every feature (trees cannot consume sequences directly).
The number of boosting rounds is chosen on the CHRONOLOGICAL validation split
(sklearn's built-in early stopping would carve a random, leaky split from train):
by its log loss, or (``select``) by the net-of-cost return per unit of risk of each
round's forecasts, ties to the log loss.

Prediction does not go through scikit-learn: the fitted trees are copied into flat
arrays (:class:`strategies.models.flat_trees.FlatTrees`) whenever an estimator is set
(fit, registry load) and walked all at once, with exactly scikit-learn's raw values and
probabilities (``predict_proba``'s ``expit``), ~20x faster for one live row. A saved model
keeps those arrays too (the registry's ``trees.npz``): loading and predicting import no
scikit-learn (~1.4 s of a backtest's start-up); only fitting does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import structlog
import torch
from scipy.special import expit
from threadpoolctl import ThreadpoolController

from strategies.models.calibration import logit
from strategies.models.base import FitReport, Model, ValidationScore
from strategies.models.flat_trees import FlatTrees
from strategies.features.windows import Windows


log = structlog.get_logger(__name__)

_CONTROLLER: ThreadpoolController | None = None


def _thread_limit() -> Any:
    """Limit OpenMP/BLAS threads to the process's torch setting (controller cached: it is slow to build)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=torch.get_num_threads())


class GBMModel(Model):
    _estimator: Any = None
    _trees: FlatTrees | None = None
    _unpickle: Callable[[], Any] | None = None  # a loaded model's estimator, read on first use

    @property
    def estimator(self) -> Any:
        """The fitted scikit-learn estimator (what the registry stores)."""
        if self._estimator is None and self._unpickle is not None:
            self._estimator, self._unpickle = self._unpickle(), None
        return self._estimator

    @estimator.setter
    def estimator(self, estimator: Any) -> None:
        """Set a fitted estimator; its trees are flattened for prediction at once."""
        self._estimator, self._unpickle = estimator, None
        self._trees = None if estimator is None else FlatTrees.of(estimator)

    @property
    def trees(self) -> FlatTrees | None:
        """The flattened trees that predict (``None`` before a fit)."""
        return self._trees

    def set_trees(self, trees: FlatTrees, estimator: Callable[[], Any]) -> None:
        """A saved model's flattened trees; ``estimator()`` unpickles its scikit-learn estimator,
        called only when :attr:`estimator` is read (predicting imports no scikit-learn)."""
        self._trees, self._estimator, self._unpickle = trees, None, estimator

    def _tabular(self, xn: np.ndarray) -> np.ndarray:
        t = xn.shape[1]
        lags = [lag for lag in self.spec.gbm_lags if lag < t]
        parts = [xn[:, t - 1 - lag, :] for lag in lags] + [xn.mean(axis=1)]
        return np.concatenate(parts, axis=1)

    def _make(self, max_iter: int) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor  # ~1.4 s

        s = self.spec
        kw = dict(max_iter=max_iter, learning_rate=s.gbm_learning_rate, max_leaf_nodes=s.gbm_max_leaf_nodes,
                  l2_regularization=s.gbm_l2, early_stopping=False, random_state=s.seed)
        if self.task == "classification":
            return HistGradientBoostingClassifier(**kw)
        return HistGradientBoostingRegressor(**kw)

    def fit(self, train: Windows, val: Windows, progress: bool = False,
            select: ValidationScore | None = None) -> FitReport:
        # OpenMP threads follow the process's torch setting (busy-waiting extra
        # threads on a loaded 2-core box is many times slower than one thread).
        with _thread_limit():
            return self._fit(train, val, select)

    def _fit(self, train: Windows, val: Windows, select: ValidationScore | None = None) -> FitReport:
        t0 = time.perf_counter()
        tr = train.subset(slice(None, None, self.spec.stride))
        xt = self._tabular(tr.with_features(self.normalizer.transform(tr.features)).x())
        xv = self._tabular(val.with_features(self.normalizer.transform(val.features)).x())
        yt, yv = tr.y.astype(np.float64), val.y.astype(np.float64)
        if self.task == "regression":
            self.y_mean, self.y_std = float(yt.mean()), float(yt.std() or 1.0)
            yt, yv = (yt - self.y_mean) / self.y_std, (yv - self.y_mean) / self.y_std
        if tr.w is not None:
            xt, yt = self._thin(xt, yt, tr.w)
        if self.task == "classification" and self.spec.class_balance:
            xt, yt = self._undersample(xt, yt)
        est = self._make(self.spec.gbm_max_iter).fit(xt, yt)
        losses: list[float] = []
        nets: list[float] = []
        stages = FlatTrees.of(est).staged_raw(xv).T  # [rounds, n]: staged_predict(_proba)'s raw values
        if self.task == "classification":
            for raw in stages:
                q = np.clip(expit(raw), 1e-7, 1 - 1e-7)
                losses.append(float(-np.mean(yv * np.log(q) + (1 - yv) * np.log(1 - q))))
                if select is not None:
                    nets.append(select.of_logits(logit(q)))
        else:
            losses = [float(np.mean((raw - yv) ** 2)) for raw in stages]
        if nets:  # the most net return per unit of risk; among equals, the lowest log loss
            best = max(range(len(losses)), key=lambda i: (round(nets[i], 9), -losses[i])) + 1
        else:
            best = int(np.argmin(losses)) + 1
        # Same seed, no subsampling: the first ``best`` trees are identical.
        self.estimator = self._make(best).fit(xt, yt) if best < len(losses) else est
        log.info("gbm_fit", model=self.name, rounds=best, of=len(losses))
        return FitReport(
            epochs_run=len(losses), best_epoch=best, train_loss=(), val_loss=tuple(losses),
            stopped_early=best < len(losses), seconds=time.perf_counter() - t0,
            extra={"val_net_sharpe": nets[best - 1]} if nets else {},
        )

    def _thin(self, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sample weights as seeded Bernoulli thinning (keep row i with probability w_i / max w):
        the expected count of each row is proportional to its weight, without sklearn's slow
        weighted binning (see :meth:`_undersample`)."""
        keep = np.random.default_rng(self.spec.seed).random(len(w)) < w / max(float(w.max()), 1e-12)
        return x[keep], y[keep]

    def _undersample(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class balancing by seeded undersampling of the majority class (time order kept).

        Not ``class_weight``: with sample weights scikit-learn 1.9 bins features with
        a Python-level weighted percentile that is ~100x slower than the fit itself.
        """
        pos, neg = np.flatnonzero(y >= 0.5), np.flatnonzero(y < 0.5)
        major, minor = (pos, neg) if len(pos) > len(neg) else (neg, pos)
        if len(minor) == 0 or len(major) == len(minor):
            return x, y
        rng = np.random.default_rng(self.spec.seed)
        keep = np.sort(np.concatenate([minor, rng.choice(major, size=len(minor), replace=False)]))
        return x[keep], y[keep]

    def _raw_output(self, xn: np.ndarray) -> np.ndarray:
        if self._trees is None:
            raise RuntimeError(f"{self.name}: model is not fitted")
        raw = self._trees.raw(self._tabular(xn))
        if self.task == "classification":  # through P(up) as predict_proba gives it: the same logits
            return logit(expit(raw))
        return raw

    def get_state(self) -> dict[str, Any]:
        return {"estimator": self.estimator}

    def set_state(self, state: dict[str, Any]) -> None:
        self.estimator = state["estimator"]
