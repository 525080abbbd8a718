"""Probability calibration fitted on the validation split.

* :class:`TemperatureScaler`: ``p = sigmoid(logit / T)``; one parameter, keeps the
  ranking (AUC) and stays differentiable, so integrated gradients still work.
* :class:`IsotonicCalibrator`: monotone piecewise-linear map of the raw
  probability (scikit-learn); more flexible, needs more validation rows.
* :class:`IdentityCalibrator`: no-op.

All map raw logits to calibrated probabilities and serialise to plain dicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))


def logit(p: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps)
    return np.log(p / (1 - p))


class Calibrator(Protocol):
    kind: str

    def __call__(self, logits: np.ndarray) -> np.ndarray: ...

    def to_dict(self) -> dict[str, object]: ...


@dataclass(frozen=True, slots=True)
class IdentityCalibrator:
    kind: str = "none"

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(np.asarray(logits, dtype=np.float64))

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind}


@dataclass(frozen=True, slots=True)
class TemperatureScaler:
    temperature: float = 1.0
    kind: str = "temperature"

    @classmethod
    def fit(cls, logits: np.ndarray, y: np.ndarray) -> TemperatureScaler:
        """Minimise validation log loss over T on a log-spaced grid then refine (deterministic)."""
        z = np.asarray(logits, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)

        def nll(t: float) -> float:
            p = np.clip(sigmoid(z / t), 1e-7, 1 - 1e-7)
            return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

        grid = np.exp(np.linspace(np.log(0.05), np.log(50.0), 121))
        best = float(grid[int(np.argmin([nll(t) for t in grid]))])
        fine = best * np.exp(np.linspace(-0.06, 0.06, 25))
        best = float(fine[int(np.argmin([nll(t) for t in fine]))])
        return cls(best)

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(np.asarray(logits, dtype=np.float64) / self.temperature)

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "temperature": self.temperature}


@dataclass(frozen=True, slots=True)
class IsotonicCalibrator:
    x: tuple[float, ...]
    y: tuple[float, ...]
    kind: str = "isotonic"

    @classmethod
    def fit(cls, logits: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
        # scikit-learn: only isotonic calibration needs it
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=1e-4, y_max=1 - 1e-4, out_of_bounds="clip")
        iso.fit(sigmoid(np.asarray(logits, dtype=np.float64)), np.asarray(y, dtype=np.float64))
        return cls(tuple(map(float, iso.X_thresholds_)), tuple(map(float, iso.y_thresholds_)))

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        return np.interp(sigmoid(np.asarray(logits, dtype=np.float64)), self.x, self.y)

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "x": list(self.x), "y": list(self.y)}


def fit_calibrator(kind: str, logits: np.ndarray, y: np.ndarray) -> Calibrator:
    if kind == "temperature":
        return TemperatureScaler.fit(logits, y)
    if kind == "isotonic":
        return IsotonicCalibrator.fit(logits, y)
    return IdentityCalibrator()


def calibrator_from_dict(d: dict[str, object]) -> Calibrator:
    kind = d.get("kind", "none")
    if kind == "temperature":
        return TemperatureScaler(float(d["temperature"]))  # type: ignore[arg-type]
    if kind == "isotonic":
        return IsotonicCalibrator(tuple(d["x"]), tuple(d["y"]))  # type: ignore[arg-type]
    return IdentityCalibrator()
