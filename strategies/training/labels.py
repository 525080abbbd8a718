"""Cost-aware labels: triple barrier, forward return over H, "net return beats the cost".

These look INTO THE FUTURE by design and are batch-only (training and evaluation).
Every label of row ``t`` (decided when bar ``t`` closes) also says when it is
*resolved*: ``end[t]``, the last row whose price it reads. Purging and embargo use
that real span (a triple-barrier label lasts until its first touch, not always H
bars), and overlapping spans share their weight (average uniqueness).

* **Triple barrier** (López de Prado, *Advances in Financial Machine Learning*,
  2018, ch. 3): from ``close[t]``, an upper and a lower barrier at
  ``+-w[t]`` in log return, ``w[t] = max(k * vol[t] * sqrt(H), m * cost)`` where
  ``vol[t]`` is the per-bar volatility forecast known at ``t`` and ``cost`` the
  round-trip cost (fees + slippage + spread); a time-out after ``H`` bars. The
  first close at or beyond a barrier decides: :data:`UP` / :data:`DOWN`; none in H
  bars: :data:`TIMEOUT`. Barriers are checked on closes (as in the book), so a
  label never depends on the order of prices inside one bar.
* **Forward log return** over H bars (regression): ``log(close[t+H] / close[t])``.
* **Net return beats the cost** (classification): 1 when
  ``close[t+H] / close[t] - 1 > cost``.

The binary form of the triple barrier that the P(up) classifiers learn
(:func:`binary_target`) is 1 when the label resolves with a positive return: an
upper touch, or a time-out above the entry price.

Rows whose horizon runs past the end of the history are unknown (NaN, ``end = -1``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from strategies.decision import direction_move
from strategies.training.targets import TargetSpec, compute_target, seven_day_bars

if TYPE_CHECKING:
    from strategies.models.spec import ModelSpec

UP, DOWN, TIMEOUT = 1, -1, 0
MAX_HORIZON = 168
LABEL_KINDS = ("triple_barrier", "net_return")
_CHUNK = 4096  # rows per vectorised block (H columns each)


def round_trip_cost(fee_rate: float, slippage_bps: float, spread_bps: float = 0.0) -> float:
    """What an entry plus an exit cost, as a fraction of notional: 2 x (fee + slippage + half the spread)."""
    if min(fee_rate, slippage_bps, spread_bps) < 0:
        raise ValueError("fees, slippage and spread must be >= 0")
    return 2.0 * (fee_rate + slippage_bps / 1e4 + spread_bps / 2e4)


@dataclass(frozen=True, slots=True)
class BarrierSpec:
    """Label settings of one model: horizon, barrier multiple, cost floor."""

    horizon: int = 24  # bars (1..168): the time-out
    k: float = 1.0  # barrier = k x forecast volatility over the horizon ...
    floor_multiple: float = 2.0  # ... never closer than this multiple of the round-trip cost
    cost: float = 0.0032  # round-trip cost (fraction); see round_trip_cost

    def __post_init__(self) -> None:
        if not 1 <= self.horizon <= MAX_HORIZON:
            raise ValueError(f"horizon must be 1..{MAX_HORIZON} bars, got {self.horizon}")
        if self.k <= 0 or self.floor_multiple < 0 or self.cost < 0:
            raise ValueError("need k > 0, floor_multiple >= 0 and cost >= 0")

    def widths(self, vol: np.ndarray) -> np.ndarray:
        """Barrier half-width per row (log return): ``max(k * vol * sqrt(H), m * cost)``."""
        w = self.k * np.asarray(vol, dtype=np.float64) * np.sqrt(self.horizon)
        return np.maximum(w, self.floor_multiple * self.cost)


@dataclass(frozen=True, slots=True)
class Labels:
    """Labels of every row: class or value, resolution row, realised log return, barrier width."""

    y: np.ndarray  # float64; UP/DOWN/TIMEOUT, 0/1 or a return; NaN where unknown
    end: np.ndarray  # int64 row that resolves the label (first touch or time-out); -1 if unknown
    ret: np.ndarray  # log return from close[t] to close[end]; NaN if unknown
    width: np.ndarray  # barrier half-width (log return); NaN for labels without barriers

    @property
    def known(self) -> np.ndarray:
        return self.end >= 0


def triple_barrier(close: np.ndarray, vol: np.ndarray, spec: BarrierSpec) -> Labels:
    """Triple-barrier labels of every row (see the module docstring)."""
    lc = np.log(np.asarray(close, dtype=np.float64))
    n, h = len(lc), spec.horizon
    y, ret, width = np.full(n, np.nan), np.full(n, np.nan), spec.widths(vol)
    end = np.full(n, -1, dtype=np.int64)
    if n <= h:
        return Labels(y, end, ret, width)
    future = np.lib.stride_tricks.sliding_window_view(lc[1:], h)  # future[t] = lc[t+1 .. t+h]
    for lo in range(0, n - h, _CHUNK):
        hi = min(lo + _CHUNK, n - h)
        path = future[lo:hi] - lc[lo:hi, None]
        w = width[lo:hi, None]
        ok = np.isfinite(w[:, 0])
        up, dn = path >= w, path <= -w
        first_up = np.where(up.any(axis=1), up.argmax(axis=1), h)
        first_dn = np.where(dn.any(axis=1), dn.argmax(axis=1), h)
        cls = np.where(first_up < first_dn, UP, np.where(first_dn < first_up, DOWN, TIMEOUT))
        step = np.minimum(np.minimum(first_up, first_dn), h - 1)  # 0-based offset of the resolving bar
        rows = np.arange(lo, hi)
        y[lo:hi] = np.where(ok, cls, np.nan)
        end[lo:hi] = np.where(ok, rows + 1 + step, -1)
        ret[lo:hi] = np.where(ok, path[np.arange(hi - lo), step], np.nan)
    return Labels(y, end, ret, width)


def forward_return(close: np.ndarray, horizon: int) -> Labels:
    """``log(close[t+H] / close[t])``, resolved at ``t + H``."""
    lc = np.log(np.asarray(close, dtype=np.float64))
    n = len(lc)
    y, end = np.full(n, np.nan), np.full(n, -1, dtype=np.int64)
    if n > horizon:
        y[: n - horizon] = lc[horizon:] - lc[: n - horizon]
        end[: n - horizon] = np.arange(horizon, n)
    return Labels(y, end, y.copy(), np.full(n, np.nan))


def net_return_beats_cost(close: np.ndarray, horizon: int, cost: float) -> Labels:
    """1 where the simple return over H exceeds the round-trip ``cost``, else 0."""
    fwd = forward_return(close, horizon)
    y = np.where(fwd.known, (np.expm1(fwd.ret) > cost).astype(np.float64), np.nan)
    return Labels(y, fwd.end, fwd.ret, fwd.width)


def binary_target(labels: Labels) -> np.ndarray:
    """P(up) classifiers' target of triple-barrier labels: 1 when resolved with a gain, else 0."""
    return np.where(labels.known, (labels.ret > 0).astype(np.float64), np.nan)


def trailing_vol(close: np.ndarray, bars: int) -> np.ndarray:
    """Per row: root-mean-square of the last ``bars`` 1-bar log returns (NaN until filled)."""
    close = np.asarray(close, dtype=np.float64)
    out = np.full(len(close), np.nan)
    if len(close) <= bars:
        return out
    r2 = np.zeros(len(close))
    r2[1:] = np.log(close[1:] / close[:-1]) ** 2
    csum = np.concatenate([[0.0], np.cumsum(r2)])
    t = np.arange(bars, len(close))
    out[bars:] = np.sqrt(np.maximum(csum[t + 1] - csum[t + 1 - bars], 0.0) / bars)
    return out


def trend_side(close: np.ndarray, fast: int, slow: int) -> np.ndarray:
    """Primary side per row: True where SMA(fast) > SMA(slow) of the closes up to that row."""
    c = np.asarray(close, dtype=np.float64)
    csum = np.concatenate([[0.0], np.cumsum(c)])
    out = np.zeros(len(c), dtype=bool)
    if len(c) < slow:
        return out
    t = np.arange(slow - 1, len(c))
    out[t] = (csum[t + 1] - csum[t + 1 - fast]) / fast > (csum[t + 1] - csum[t + 1 - slow]) / slow
    return out


def meta_labels(close: np.ndarray, side: np.ndarray, vol: np.ndarray, spec: BarrierSpec) -> Labels:
    """1 where the primary is long and the long trade from that bar nets more than the cost, 0 where
    it does not, NaN where the primary is flat (``end`` is the trade's resolution row everywhere)."""
    lab = triple_barrier(close, vol, spec)
    won = (lab.ret > spec.cost).astype(np.float64)
    y = np.where(np.asarray(side, dtype=bool) & lab.known, won, np.nan)
    return Labels(y, lab.end, lab.ret, lab.width)


def model_labels(arrays: Mapping[str, np.ndarray], spec: ModelSpec, timeframe: str) -> Labels:
    """The training labels of ``spec`` over a history, with each label's resolution row.

    ``direction`` / ``log_return`` / ``realized_vol`` resolve at ``t + H``
    (:mod:`strategies.training.targets`); ``triple_barrier`` is the binary form (resolved with
    a gain) with barriers from the trailing 7-day realised volatility, the same
    forecast the strategy falls back on live; ``net_return`` beats ``spec.cost``;
    ``meta_trend`` is the meta-label of the trend rule's longs (:mod:`strategies.meta`).
    """
    close = np.asarray(arrays["close"], dtype=np.float64)
    h = spec.horizon
    if spec.target == "triple_barrier":
        vol = trailing_vol(close, seven_day_bars(timeframe))
        lab = triple_barrier(close, vol, BarrierSpec(h, spec.barrier_k, spec.barrier_floor, spec.cost))
        return Labels(binary_target(lab), lab.end, lab.ret, lab.width)
    if spec.target == "net_return":
        return net_return_beats_cost(close, h, spec.cost)
    if spec.target == "meta_trend":
        vol = trailing_vol(close, seven_day_bars(timeframe))
        return meta_labels(close, trend_side(close, spec.meta_fast, spec.meta_slow), vol,
                           BarrierSpec(h, spec.barrier_k, spec.barrier_floor, spec.cost))
    y = compute_target(close, TargetSpec(spec.target, h))
    fwd = forward_return(close, h)
    end = np.where(np.isfinite(y), fwd.end, -1)
    return Labels(y, end, fwd.ret, fwd.width)


def average_uniqueness(start: np.ndarray, end: np.ndarray, n_rows: int | None = None) -> np.ndarray:
    """Average uniqueness of each label (AFML ch. 4.4).

    Label ``i`` is decided at row ``start[i]`` and reads the returns of rows
    ``start[i] + 1 .. end[i]``. The concurrency ``c[r]`` of row ``r`` is how many
    of the given labels read it; a label's uniqueness is the mean of ``1 / c[r]``
    over its rows. A label that shares no row scores 1.
    """
    start = np.asarray(start, dtype=np.int64)
    end = np.asarray(end, dtype=np.int64)
    if len(start) == 0:
        return np.zeros(0)
    if np.any(end <= start):
        raise ValueError("every label must end after the bar it is decided on")
    n = int(n_rows if n_rows is not None else end.max() + 1)
    conc = np.zeros(n + 1, dtype=np.int64)
    np.add.at(conc, start + 1, 1)
    np.add.at(conc, end + 1, -1)
    c = np.cumsum(conc)[:n]
    inv = np.concatenate([[0.0], np.cumsum(np.where(c > 0, 1.0 / np.maximum(c, 1), 0.0))])
    return (inv[end + 1] - inv[start + 1]) / (end - start)


def uniqueness_weights(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Sample weights from :func:`average_uniqueness`, scaled to mean 1."""
    u = average_uniqueness(start, end)
    return u / u.mean() if len(u) and u.mean() > 0 else u


def move_function(target: str, horizon: int, k: float = 1.0, floor: float = 2.0,
                  cost: float = 0.0032) -> Callable[[float], float]:
    """Per-bar vol -> size of the move that resolves the label: the barrier half-width of a
    triple-barrier model, else the mean absolute H-bar return of a normal model."""
    if target == "triple_barrier":
        spec = BarrierSpec(horizon, k, floor, cost)
        return lambda vol: float(spec.widths(vol))
    return lambda vol: direction_move(vol, horizon)
