"""Sliding windows over a feature matrix, chronological splitting and normalisation.

A :class:`Windows` does not materialise ``[n, T, F]`` up front: it keeps the raw
feature matrix and the row index each window ENDS at (the decision bar); inputs
are rows ``end-T+1 .. end`` and the label belongs to ``end``. Batches are cut on
demand through a zero-copy ``sliding_window_view``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLIP = 8.0


@dataclass(frozen=True, slots=True)
class Normalizer:
    """Per-feature standardisation ``clip((x - mean) / std, ±CLIP)``; NaN -> 0 (the mean)."""

    mean: np.ndarray
    std: np.ndarray
    clip: float = CLIP

    @classmethod
    def fit(cls, rows: np.ndarray) -> Normalizer:
        rows = np.asarray(rows, dtype=np.float64)
        mean = np.nanmean(rows, axis=0)
        std = np.nanstd(rows, axis=0)
        mean = np.where(np.isfinite(mean), mean, 0.0)
        std = np.where(np.isfinite(std) & (std > 1e-12), std, 1.0)
        return cls(mean, std)

    def transform(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        z = np.clip(np.nan_to_num(z, nan=0.0, posinf=self.clip, neginf=-self.clip), -self.clip, self.clip)
        return z.astype(np.float32)

    def to_dict(self) -> dict[str, object]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist(), "clip": self.clip}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Normalizer:
        return cls(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64),
                   float(d.get("clip", CLIP)))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Windows:
    """Windows of ``window`` rows over ``features`` ending at rows ``end``, with labels ``y``."""

    features: np.ndarray  # [N, F] raw (or normalised) features, float32
    end: np.ndarray  # [n] int64 row index of each window's last row
    y: np.ndarray  # [n] float32 targets (NaN allowed only for inference)
    window: int
    ts: np.ndarray | None = None  # [n] open time of each window's last bar (ms)
    w: np.ndarray | None = None  # [n] sample weights (mean 1; None = equal)

    def __len__(self) -> int:
        return int(len(self.end))

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    def x(self, sel: np.ndarray | slice | None = None) -> np.ndarray:
        """Materialise ``[k, window, F]`` inputs for the selected windows (all if ``None``)."""
        view = np.lib.stride_tricks.sliding_window_view(self.features, self.window, axis=0)
        ends = self.end if sel is None else self.end[sel]
        return np.ascontiguousarray(view[ends - self.window + 1].transpose(0, 2, 1))

    def subset(self, sel: np.ndarray | slice) -> Windows:
        return Windows(self.features, self.end[sel], self.y[sel], self.window,
                       None if self.ts is None else self.ts[sel], None if self.w is None else self.w[sel])

    def with_features(self, features: np.ndarray) -> Windows:
        return Windows(features, self.end, self.y, self.window, self.ts, self.w)

    def with_weights(self, w: np.ndarray | None) -> Windows:
        return Windows(self.features, self.end, self.y, self.window, self.ts, w)


def valid_ends(features: np.ndarray, y: np.ndarray | None, window: int) -> np.ndarray:
    """Row indices where a full all-finite window (and a finite label) exists."""
    finite_row = np.isfinite(features).all(axis=1).astype(np.int64)
    csum = np.concatenate([[0], np.cumsum(finite_row)])
    idx = np.arange(window - 1, len(features))
    ok = (csum[idx + 1] - csum[idx + 1 - window]) == window
    if y is not None:
        ok &= np.isfinite(y[idx])
    return idx[ok]


@dataclass(frozen=True, slots=True)
class Split:
    train: np.ndarray  # window end rows
    val: np.ndarray
    test: np.ndarray

    @property
    def train_rows(self) -> tuple[int, int]:
        """[first, last] feature rows any training window reads (for normalisation)."""
        return int(self.train[0]), int(self.train[-1])


def chronological_split(
    ends: np.ndarray, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15), purge: int = 1,
    label_end: np.ndarray | None = None,
) -> Split:
    """Split window ends by time (never shuffled), leaving ``purge`` bars between splits.

    The last training label reads row ``train_end + horizon``; with ``purge >=
    horizon`` every validation window ends strictly after that, and likewise for test.
    With ``label_end`` (per history row: the row that resolves its label), a train or
    validation window is kept when its label resolves before the next split starts
    (the label's real span) and ``purge`` only embargoes the rows after it.
    """
    ends = np.asarray(ends)
    if len(ends) < 10:
        raise ValueError(f"too few windows to split: {len(ends)}")
    lo, hi = int(ends[0]), int(ends[-1])
    span = hi - lo + 1
    cut1 = lo + int(round(span * fractions[0]))
    cut2 = lo + int(round(span * (fractions[0] + fractions[1])))
    if label_end is None:
        train = ends[ends < cut1 - purge]
        val = ends[(ends >= cut1) & (ends < cut2 - purge)]
    else:
        res = np.asarray(label_end)[ends]
        train = ends[(res >= 0) & (res < cut1) & (ends < cut1 - purge)]
        val = ends[(ends >= cut1) & (res >= 0) & (res < cut2) & (ends < cut2 - purge)]
    test = ends[ends >= cut2]
    if min(len(train), len(val), len(test)) == 0:
        raise ValueError("a split is empty; use more data or a smaller purge")
    return Split(train, val, test)
