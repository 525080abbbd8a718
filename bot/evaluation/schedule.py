"""``[walkforward]``: the retraining schedule shared by walk-forward evaluation and the daemon.

``retrain_every`` sets both the length of each walk-forward test period and when the
live daemon's scheduled retrain falls due (:func:`retrain_due`). No torch import here,
so loading the configuration stays light.
"""

from __future__ import annotations

import difflib
import re
from datetime import UTC, date, datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from bot.config.section import Section

DAY_MS = 86_400_000
_CADENCE = re.compile(r"^(month|quarter|half|year|\d+[dw])$")
SPLITTERS = ("walk_forward", "cpcv")


class WalkForwardConfig(Section):
    """``[walkforward]``: the retraining schedule shared by evaluation and the live daemon."""

    retrain_every: str = "quarter"  # month | quarter | half | year | <N>d | <N>w
    min_train_days: int = Field(730, ge=30)  # history before the first test period
    max_train_days: int | None = Field(None, ge=30)  # None: expanding window
    val_fraction: float = Field(0.15, gt=0, lt=0.5)  # tail of the training span for early stop
    start: date | None = None  # first candle used (default: start of the data)
    end: date | None = None  # candles before this day (default: end of the data)
    max_train_windows: int | None = Field(12_000, ge=100)  # cap per model fit (most recent)
    epochs: int | None = Field(None, ge=1)  # override every model's epochs
    threads: int = Field(1, ge=1)  # torch threads; >1 oversubscribes a shared 2-core box badly
    long_above: float = Field(0.5, ge=0, le=1)  # forecast strategies: go long at p >= this
    exit_below: float = Field(0.5, ge=0, le=1)  # ... and flat below this
    size_pct: float = Field(100.0, gt=0, le=100)  # position size of forecast strategies
    spread_bps: float = Field(2.0, ge=0)  # quoted spread; each fill pays half of it
    # "signal": every strategy full size, long/flat, no strength floor, stops or breakers
    # (measures the signals); "config": the configured [risk] section as it is.
    risk_profile: Literal["signal", "config"] = "signal"
    cache_dir: str | None = "var/walkforward"  # predictions cache (None: off)
    # "walk_forward": the schedule above; "cpcv": combinatorial purged cross-validation over
    # cpcv_groups contiguous groups, cpcv_test_groups tested per split (a Sharpe per path)
    splitter: str = "walk_forward"
    cpcv_groups: int = Field(6, ge=3, le=16)
    cpcv_test_groups: int = Field(2, ge=1, le=15)
    cpcv_embargo_days: float = Field(2.0, ge=0, le=365)  # training rows dropped after each test group

    @field_validator("splitter")
    @classmethod
    def _splitter(cls, v: str) -> str:
        if v not in SPLITTERS:
            hint = difflib.get_close_matches(v, SPLITTERS, n=1)
            raise ValueError(f"expected one of {', '.join(SPLITTERS)}"
                             + (f"; did you mean {hint[0]!r}?" if hint else ""))
        return v

    @model_validator(mode="after")
    def _cpcv_groups(self) -> WalkForwardConfig:
        if self.cpcv_test_groups >= self.cpcv_groups:
            raise ValueError(f"cpcv_test_groups ({self.cpcv_test_groups}) must be below cpcv_groups "
                             f"({self.cpcv_groups}); e.g. cpcv_groups = 6, cpcv_test_groups = 2")
        return self

    @field_validator("retrain_every")
    @classmethod
    def _cadence(cls, v: str) -> str:
        if not _CADENCE.match(v):
            raise ValueError("expected month, quarter, half, year, <N>d or <N>w")
        return v


def _ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)


def _add_months(d: date, months: int) -> date:
    m = d.month - 1 + months
    return date(d.year + m // 12, m % 12 + 1, 1)


def period_starts(first_ms: int, last_ms: int, cadence: str, min_train_days: int) -> list[int]:
    """Test-period boundaries (ms): calendar-aligned for month/quarter/half/year."""
    begin = first_ms + min_train_days * DAY_MS
    if cadence[-1] in "dw" and cadence[:-1].isdigit():
        step = int(cadence[:-1]) * (7 if cadence[-1] == "w" else 1) * DAY_MS
        return list(range(begin, last_ms + 1, step))
    months = {"month": 1, "quarter": 3, "half": 6, "year": 12}[cadence]
    d = datetime.fromtimestamp(begin / 1000, UTC).date()
    start = date(d.year, ((d.month - 1) // months) * months + 1, 1)
    if _ms(start) < begin:
        start = _add_months(start, months)
    out = []
    while _ms(start) <= last_ms:
        out.append(_ms(start))
        start = _add_months(start, months)
    return out


def retrain_due(trained_ms: int, now_ms: int, cadence: str) -> bool:
    """Whether a retraining boundary of ``cadence`` lies after ``trained_ms`` and by ``now_ms``:
    the start of a new calendar month/quarter/half/year (UTC), or ``<N>d``/``<N>w`` elapsed."""
    return any(b > trained_ms for b in period_starts(trained_ms, now_ms, cadence, 0))
