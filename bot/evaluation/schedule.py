"""``[walkforward]``: the walk-forward retraining schedule (no torch import, so config stays light)."""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import Field, field_validator

from bot.config_section import Section

_CADENCE = re.compile(r"^(month|quarter|half|year|\d+[dw])$")


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

    @field_validator("retrain_every")
    @classmethod
    def _cadence(cls, v: str) -> str:
        if not _CADENCE.match(v):
            raise ValueError("expected month, quarter, half, year, <N>d or <N>w")
        return v
