"""Data-quality report and treatment of candle series: gaps, duplicates, outliers, zero volume.

What happens to each defect is configurable (``QualityPolicy``):

* duplicates (same open time): ``flag`` keeps the first and reports; ``drop`` the same
  silently (a series can hold one bar per time, so twins never survive);
* outliers (absurd prints such as BTC's first 2017-08-17 bar, or invalid bars):
  ``flag`` keeps them, ``drop`` removes them, ``forward_fill`` replaces them by a flat
  bar at the previous close with zero volume;
* zero-volume bars: ``flag`` / ``drop`` / ``forward_fill`` (flat at the previous close);
* gaps (missing bars): ``flag`` reports them, ``forward_fill`` inserts flat bars at the
  previous close with zero volume (``drop`` is the same as ``flag``: nothing to drop);
* invalid bars (non-finite or non-positive prices, high below low, prices more than
  ``ABSURD_MULTIPLE`` times the rolling median): never stored; ``drop`` (default) reports
  and drops them, ``refuse`` rejects the file naming the first one's line.

A file whose rows are not ``timeframe`` apart, or not on its grid, is refused
(``CandleFileError``): it is another timeframe's data, or not candles at all.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from bot.core.events import TIMEFRAME_MS, Candle, timeframe_ms
from bot.marketdata.candle_files import CandleFileError
from bot.marketdata.importer import RawCandles

ACTIONS = ("flag", "drop", "forward_fill")
INVALID_ACTIONS = ("drop", "refuse")
ABSURD_MULTIPLE = 100.0  # a price this many times the rolling median close is no print, it is corrupt
WEEK_ANCHOR_MS = 4 * 86_400_000  # weekly bars open on Mondays; 1970-01-01 was a Thursday


@dataclass(frozen=True, slots=True)
class QualityPolicy:
    gaps: str = "flag"
    duplicates: str = "drop"
    outliers: str = "flag"
    zero_volume: str = "flag"
    invalid: str = "drop"
    outlier_threshold: float = 0.5  # |price / rolling median close - 1| above this (per 1h bar,
    # scaled by sqrt(bar length / 1h)) is absurd
    outlier_window: int = 24  # bars each side in the rolling median

    def __post_init__(self) -> None:
        for name in ("gaps", "duplicates", "outliers", "zero_volume"):
            if getattr(self, name) not in ACTIONS:
                raise ValueError(f"{name}: expected one of {ACTIONS}, got {getattr(self, name)!r}")
        if self.invalid not in INVALID_ACTIONS:
            raise ValueError(f"invalid: expected one of {INVALID_ACTIONS}, got {self.invalid!r}")


@dataclass(slots=True)
class QualityReport:
    rows_read: int = 0
    rows_out: int = 0
    first_ts: int | None = None
    last_ts: int | None = None
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (first missing ts, bars missing)
    duplicates: int = 0
    duplicates_differing: int = 0
    outliers: list[tuple[int, str]] = field(default_factory=list)
    zero_volume: int = 0
    invalid: int = 0  # bars never stored (see ``outliers`` for why)
    filled: int = 0
    dropped: int = 0

    @property
    def missing_bars(self) -> int:
        return sum(n for _, n in self.gaps)

    def render(self, timeframe: str) -> str:

        def iso(ms: int) -> str:
            return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")

        lines = [
            f"rows read {self.rows_read}, written {self.rows_out} ({timeframe}); "
            f"span {iso(self.first_ts) if self.first_ts else '-'} -> "
            f"{iso(self.last_ts) if self.last_ts else '-'}",
            f"gaps: {len(self.gaps)} ({self.missing_bars} bars missing)",
        ]
        for ts, n in sorted(self.gaps, key=lambda g: -g[1])[:10]:
            lines.append(f"  {iso(ts)}  {n} bars")
        lines.append(f"duplicates: {self.duplicates} ({self.duplicates_differing} with differing values)")
        lines.append(f"outliers: {len(self.outliers)}")
        for ts, why in self.outliers[:10]:
            lines.append(f"  {iso(ts)}  {why}")
        lines.append(f"zero-volume bars: {self.zero_volume}")
        lines.append(f"invalid bars (never stored): {self.invalid}")
        lines.append(f"filled: {self.filled}, dropped: {self.dropped}")
        return "\n".join(lines)


def _outlier_reasons(ts: np.ndarray, ohlcv: np.ndarray, policy: QualityPolicy, tf_ms: int
                     ) -> tuple[dict[int, str], set[int]]:
    """Why each suspicious bar is suspicious, and which of them are invalid (never stored)."""
    n = len(ts)
    reasons: dict[int, str] = {}
    invalid: set[int] = set()
    if n == 0:
        return reasons, invalid
    close = ohlcv[:, 3]
    w = policy.outlier_window
    padded = np.concatenate([np.full(w, np.nan), close, np.full(w, np.nan)])
    windows = sliding_window_view(padded, 2 * w + 1).copy()
    windows[:, w] = np.nan  # exclude the bar itself
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows: no reference, no outlier
        ref = np.nanmedian(windows, axis=1)
        dev = np.nanmax(np.abs(ohlcv[:, :4] / ref[:, None] - 1.0), axis=1)
    # longer bars move more: scale the tolerance like volatility, with sqrt(time)
    threshold = policy.outlier_threshold * max(1.0, (tf_ms / 3_600_000) ** 0.5)
    for i in np.flatnonzero(dev > threshold):
        if dev[i] > ABSURD_MULTIPLE:
            invalid.add(int(i))
            reasons[int(i)] = (f"absurd price {np.nanmax(ohlcv[i, :4]):.6g}, over {ABSURD_MULTIPLE:g}x"
                               f" the rolling median close {ref[i]:.6g}")
        else:
            reasons[int(i)] = f"price {dev[i]:.0%} off the rolling median close {ref[i]:.6g}"
    for i in range(n):
        o, h, lo, c, v = (float(x) for x in ohlcv[i])
        why = Candle("", "", "1h", 0, o, h, lo, c, v).problem()
        if why is not None:
            reasons[i] = why
            invalid.add(i)
    return reasons, invalid


def _check_spacing(raw: RawCandles, ts: np.ndarray, lines: np.ndarray, timeframe: str) -> None:
    """Refuse rows off ``timeframe``'s grid, or spaced like another timeframe."""
    tf = timeframe_ms(timeframe)
    if len(ts) >= 3:
        step = int(np.median(np.diff(ts)))
        if step != tf:
            named = next((k for k, v in TIMEFRAME_MS.items() if v == step), None)
            fix = f"; pass --timeframe {named}" if named else ""
            raise CandleFileError(raw.path, f"rows are mostly {named or f'{step} ms'} apart but the"
                                            f" timeframe is {timeframe}{fix}")
    anchor = WEEK_ANCHOR_MS if timeframe == "1w" else 0
    off = (ts - anchor) % tf
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise CandleFileError(raw.path, f"open time {int(ts[i])} is {int(off[i])} ms off the {timeframe}"
                                        f" grid (bars open on whole {timeframe} boundaries)", int(lines[i]))


def clean(raw: RawCandles, exchange: str, symbol: str, timeframe: str,
          policy: QualityPolicy | None = None) -> tuple[list[Candle], QualityReport]:
    """Apply ``policy`` to ``raw`` rows; return the candles to store and the report."""
    policy = policy or QualityPolicy()
    tf = timeframe_ms(timeframe)
    report = QualityReport(rows_read=len(raw.ts))
    ts, ohlcv, lines = raw.ts, raw.ohlcv, raw.lines
    # duplicates: keep the first of each open time
    keep = np.ones(len(ts), dtype=bool)
    if len(ts):
        same = ts[1:] == ts[:-1]
        keep[1:] = ~same
        report.duplicates = int(same.sum())
        first_of = np.maximum.accumulate(np.where(keep, np.arange(len(ts)), 0))
        twins = np.flatnonzero(~keep)
        report.duplicates_differing = int(sum(
            not np.array_equal(ohlcv[i], ohlcv[first_of[i]], equal_nan=True) for i in twins))
    ts, ohlcv, lines = ts[keep], ohlcv[keep], lines[keep]
    _check_spacing(raw, ts, lines, timeframe)
    if len(ts):
        report.first_ts, report.last_ts = int(ts[0]), int(ts[-1])
    reasons, invalid = _outlier_reasons(ts, ohlcv, policy, tf)
    if invalid and policy.invalid == "refuse":
        i = min(invalid)
        raise CandleFileError(raw.path, f"invalid bar: {reasons[i]} (import with --invalid drop to skip"
                                        " such bars)", int(lines[i]))
    report.invalid = len(invalid)
    report.outliers = [(int(ts[i]), why) for i, why in sorted(reasons.items())]
    zero = set(int(i) for i in np.flatnonzero(ohlcv[:, 4] == 0.0)) - set(reasons)
    report.zero_volume = len(zero)
    out: list[Candle] = []
    prev_close: float | None = None
    prev_ts: int | None = None
    for i in range(len(ts)):
        t = int(ts[i])
        if prev_ts is not None and t - prev_ts > tf:
            missing = (t - prev_ts) // tf - 1
            if missing > 0:
                report.gaps.append((prev_ts + tf, int(missing)))
                if policy.gaps == "forward_fill" and prev_close is not None:
                    for k in range(1, int(missing) + 1):
                        out.append(_flat(exchange, symbol, timeframe, prev_ts + k * tf, prev_close))
                        report.filled += 1
        action = policy.outliers if i in reasons else policy.zero_volume if i in zero else None
        o, h, lo, c, v = (float(x) for x in ohlcv[i])
        if action == "drop":
            report.dropped += 1
            prev_ts = t
            continue
        if action == "forward_fill" and prev_close is not None:
            out.append(_flat(exchange, symbol, timeframe, t, prev_close))
            report.filled += 1
        elif action == "forward_fill" or i in invalid:
            report.dropped += 1  # nothing to fill from / never stored
            prev_ts = t
            continue
        else:
            out.append(Candle(exchange, symbol, timeframe, t, o, h, lo, c, v))
            prev_close = c
        prev_ts = t
    report.rows_out = len(out)
    return out, report


def _flat(exchange: str, symbol: str, timeframe: str, ts: int, price: float) -> Candle:
    return Candle(exchange, symbol, timeframe, ts, price, price, price, price, 0.0)
