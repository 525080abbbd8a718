"""Prediction targets. These look INTO THE FUTURE by design and are batch-only.

The target of row ``t`` describes what happens after bar ``t`` closes:

* ``direction``: 1.0 if ``close[t + h] > close[t]`` else 0.0 (classification);
* ``log_return``: ``log(close[t + h] / close[t])`` (regression);
* ``realized_vol``: root-mean-square of the 1-bar log returns of bars
  ``t+1 .. t+h`` (regression; ``h`` defaults to 7 days of bars).

Rows whose horizon runs past the end of the history are NaN. The training split
purges at least ``horizon`` rows between splits so no label straddles a boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from bot.core.events import timeframe_ms

TargetKind = Literal["direction", "log_return", "realized_vol"]
TASKS: dict[str, str] = {
    "direction": "classification",
    "log_return": "regression",
    "realized_vol": "regression",
}


@dataclass(frozen=True, slots=True)
class TargetSpec:
    kind: TargetKind = "direction"
    horizon: int = 1  # bars

    def __post_init__(self) -> None:
        if self.kind not in TASKS:
            raise ValueError(f"unknown target {self.kind!r}; known: {sorted(TASKS)}")
        if self.horizon < 1:
            raise ValueError("horizon must be >= 1 bar")

    @property
    def task(self) -> str:
        return TASKS[self.kind]


def seven_day_bars(timeframe: str) -> int:
    return max(1, (7 * 86_400_000) // timeframe_ms(timeframe))


def compute_target(close: np.ndarray, spec: TargetSpec) -> np.ndarray:
    close = np.asarray(close, dtype=np.float64)
    n, h = len(close), spec.horizon
    y = np.full(n, np.nan)
    if n <= h:
        return y
    if spec.kind == "direction":
        y[: n - h] = (close[h:] > close[: n - h]).astype(np.float64)
    elif spec.kind == "log_return":
        y[: n - h] = np.log(close[h:] / close[: n - h])
    else:
        r2 = np.zeros(n)
        r2[1:] = np.log(close[1:] / close[:-1]) ** 2
        csum = np.concatenate([[0.0], np.cumsum(r2)])
        # sum of r2[t+1 .. t+h] = csum[t+h+1] - csum[t+1]
        t = np.arange(n - h)
        y[: n - h] = np.sqrt(np.maximum(csum[t + h + 1] - csum[t + 1], 0.0) / h)
    return y
