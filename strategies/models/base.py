"""The model interface shared by every architecture (version :data:`MODEL_API_VERSION`).

Contract (what the ensemble and the backtester rely on):

* inputs are RAW feature windows ``[n, window, n_features]`` exactly as produced
  by :func:`strategies.features.compute.compute_features` or
  :meth:`strategies.features.buffer.FeatureBuffer.latest_window`; the model applies its
  own normalisation (fitted on the training split only, stored with it);
* :meth:`Model.predict` returns ``[n]``: calibrated P(up) for classifiers, the
  target's value for regressors;
* :meth:`Model.predict_windows` is the fast batched path over every window of a
  history (models are causal: window ``i`` reads rows ``end_i - window + 1 .. end_i``);
* torch models also expose ``module`` and differentiable ``forward_logits`` /
  ``forward_proba`` (see :mod:`strategies.models.torch_base`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from strategies.models.calibration import Calibrator, IdentityCalibrator, fit_calibrator
from strategies.models.spec import ModelSpec
from strategies.features.windows import Normalizer, Windows


MODEL_API_VERSION = 1


class ValidationScore(Protocol):
    """How a fit is judged on its validation span besides the log loss (``select_by =
    "net_return"``: :class:`strategies.training.selection.NetScore`)."""

    def of_logits(self, logits: np.ndarray, kind: str | None = None) -> float:
        """The score of raw outputs, calibrated (``kind``) on the span as they would be traded."""
        ...

    def choose_calibration(self, logits: np.ndarray) -> tuple[str, dict[str, float]]:
        """The calibration kind that scores best, and every kind's score."""
        ...


# windows per inference batch: small enough to stay in cache (measured faster than 4096 on 2 cores)
PREDICT_BATCH = 512


@dataclass(frozen=True, slots=True)
class FitReport:
    epochs_run: int
    best_epoch: int
    train_loss: tuple[float, ...]
    val_loss: tuple[float, ...]
    stopped_early: bool
    seconds: float
    final_lr: float = float("nan")
    extra: dict[str, float] = field(default_factory=dict)


class Model(ABC):
    api_version: int = MODEL_API_VERSION

    def __init__(self, spec: ModelSpec, n_features: int, normalizer: Normalizer | None = None) -> None:
        self.spec = spec
        self.n_features = n_features
        self.normalizer = normalizer or Normalizer(np.zeros(n_features), np.ones(n_features))
        self.calibrator: Calibrator = IdentityCalibrator()
        self.y_mean = 0.0  # regression targets are standardised for training
        self.y_std = 1.0

    # -- identity ------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def task(self) -> str:
        return self.spec.task

    @property
    def window(self) -> int:
        return self.spec.window

    # -- to implement ------------------------------------------------------------
    @abstractmethod
    def fit(self, train: Windows, val: Windows, progress: bool = False,
            select: ValidationScore | None = None) -> FitReport:
        """Train on RAW-feature windows; ``val`` drives early stopping: by its log loss, or with
        ``select`` by the net-of-cost return per unit of risk of its forecasts (ties: log loss)."""

    @abstractmethod
    def _raw_output(self, xn: np.ndarray) -> np.ndarray:
        """Logits (classification) or standardised values (regression) of NORMALISED windows."""

    @abstractmethod
    def get_state(self) -> dict[str, Any]:
        """Learned parameters (torch tensors or picklable objects) for the registry."""

    @abstractmethod
    def set_state(self, state: dict[str, Any]) -> None: ...

    # -- shared --------------------------------------------------------------------
    def _check_input(self, windows: np.ndarray) -> np.ndarray:
        x = np.asarray(windows)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[1] != self.window or x.shape[2] != self.n_features:
            raise ValueError(
                f"{self.name}: expected windows [n, {self.window}, {self.n_features}], got {x.shape}"
            )
        return x

    def _finish(self, raw: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            return np.asarray(self.calibrator(raw), dtype=np.float64)
        return np.asarray(raw, dtype=np.float64) * self.y_std + self.y_mean

    def predict(self, windows: np.ndarray) -> np.ndarray:
        """``[n, window, F]`` (or one ``[window, F]``) raw windows -> ``[n]`` predictions."""
        x = self._check_input(windows)
        return self._finish(self._raw_output(self.normalizer.transform(x)))

    def predict_one(self, window: np.ndarray) -> float:
        """One raw window ``[1, window, F]`` (or ``[window, F]``; a live bar's) -> its prediction,
        the value of ``predict(window)[0]`` (torch models: through a traced forward)."""
        x = self._check_input(window)
        if len(x) != 1:
            raise ValueError(f"{self.name}: predict_one takes one window, got {len(x)}")
        return float(self._finish(self._raw_one(self.normalizer.transform(x)))[0])

    def _raw_one(self, xn: np.ndarray) -> np.ndarray:
        """:meth:`_raw_output` of one normalised window (a faster path where a model has one)."""
        return self._raw_output(xn)

    def predict_raw(self, windows: np.ndarray) -> np.ndarray:
        """Uncalibrated logits / standardised values of raw windows."""
        return self._raw_output(self.normalizer.transform(self._check_input(windows)))

    def predict_windows(self, w: Windows, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """Predictions for every window of ``w`` (raw features), normalising the matrix once."""
        return self.predict_normalised(w.with_features(self.normalizer.transform(w.features)), batch_size)

    def predict_normalised(self, wn: Windows, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """:meth:`predict_windows` of windows over features this model has normalised already
        (``normalizer.transform``): a table's chunks share one normalised matrix."""
        return self._finish(self._raw_windows(wn, batch_size))

    def _raw_windows(self, wn: Windows, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        out = [self._raw_output(wn.x(slice(i, i + batch_size))) for i in range(0, len(wn), batch_size)]
        return np.concatenate(out) if out else np.zeros(0)

    def calibrate(self, val: Windows, select: ValidationScore | None = None) -> None:
        """Fit the probability calibrator on the validation split (classifiers only); with
        ``select`` its kind is the one whose cross-fitted forecasts earn the most net of costs per
        unit of risk (the kind is stored with the calibrator)."""
        if self.task != "classification":
            return
        wn = val.with_features(self.normalizer.transform(val.features))
        logits = self._raw_windows(wn)
        kind = self.spec.calibration if select is None else select.choose_calibration(logits)[0]
        self.calibrator = fit_calibrator(kind, logits, val.y)
