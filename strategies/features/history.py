"""Loading and validating a candle history for batch feature computation.

:func:`clean_history` applies exactly the acceptance rule of
:class:`bot.core.buffer.CandleBuffer` (``Candle.problem()`` plus strictly increasing
timestamps), so the batch path sees the same candles the live buffer accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import structlog

from bot.marketdata.source import CandleSource
from bot.core.events import Candle

log = structlog.get_logger(__name__)

OHLCV_KEYS = ("ts", "open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class History:
    symbol: str
    timeframe: str
    arrays: dict[str, np.ndarray]
    rejected: int = 0

    def __len__(self) -> int:
        return int(len(self.arrays["ts"]))


def accept_mask(arrays: Mapping[str, np.ndarray], symbol: str = "", timeframe: str = "1h") -> np.ndarray:
    """Boolean mask of rows a ``CandleBuffer`` fed in order would accept."""
    cols = [np.asarray(arrays[k]).tolist() for k in OHLCV_KEYS]
    mask = np.zeros(len(cols[0]), dtype=bool)
    last_ts: int | None = None
    for i, (t, o, h, lo, c, v) in enumerate(zip(*cols, strict=True)):
        t = int(t)
        if Candle("", symbol, timeframe, t, o, h, lo, c, v).problem() is not None:
            continue
        if last_ts is not None and t <= last_ts:
            continue
        mask[i] = True
        last_ts = t
    return mask


def clean_history(
    arrays: Mapping[str, np.ndarray], symbol: str = "", timeframe: str = "1h"
) -> History:
    mask = accept_mask(arrays, symbol, timeframe)
    out = {k: np.ascontiguousarray(np.asarray(arrays[k])[mask]) for k in OHLCV_KEYS}
    out["ts"] = out["ts"].astype(np.int64)
    rejected = int((~mask).sum())
    if rejected:
        log.info("history_rows_rejected", symbol=symbol, timeframe=timeframe, rejected=rejected)
    return History(symbol, timeframe, out, rejected)


def _to_ms(date: str | None) -> int | None:
    if date is None or date == "":
        return None
    dt = datetime.fromisoformat(date)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def load_history(
    source: CandleSource | Path | str,
    symbol: str,
    timeframe: str,
    start: str | None = None,
    end: str | None = None,
    exchange: str = "binance",
) -> History:
    """Validated candles of ``symbol``/``timeframe`` with open time in ``[start, end)`` (ISO dates, UTC).

    ``source``: a ``CandleSource`` (files or store), or a data directory of normalised files.
    """
    if not isinstance(source, CandleSource):
        source = CandleSource("files", Path(source), Path(), exchange)
    arrays = source.load(symbol, timeframe, _to_ms(start), _to_ms(end))
    return clean_history({k: arrays[k] for k in OHLCV_KEYS}, symbol, timeframe)
