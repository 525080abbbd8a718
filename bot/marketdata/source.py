"""Where backtest, train and walk-forward read candles: ``[data] source = "files" | "store"``.

``files`` reads the normalised CSVs under ``[data] dir``; ``store`` reads the SQLite store
(``[store] path``) that ``neuralbot download`` and ``neuralbot import`` fill, opened
read-only. Either way a range without a single candle is an error naming the range and
the first and last candle the source does hold, never an all-zero result.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from bot.marketdata.candle_csv import OHLCV_FIELDS, candle_file, load_ohlcv_arrays
from bot.core.errors import UserInputError

if TYPE_CHECKING:
    from bot.config.settings import Settings

SourceKind = Literal["files", "store"]
COLUMNS = ("ts", "open", "high", "low", "close", "volume")


class NoCandlesError(UserInputError):
    """The requested range holds no candle of the series."""


@dataclass(frozen=True, slots=True)
class CandleSource:
    kind: SourceKind
    data_dir: Path
    store_path: Path
    exchange: str

    @classmethod
    def from_settings(cls, settings: Settings) -> CandleSource:
        return cls(settings.data.source, Path(settings.data.dir), Path(settings.store.path),
                   settings.exchange.name)

    def where(self, symbol: str, timeframe: str) -> str:
        if self.kind == "store":
            return f"store {self.store_path} ({self.exchange} {symbol} {timeframe})"
        return str(candle_file(self.data_dir, self.exchange, symbol, timeframe))

    def load(self, symbol: str, timeframe: str, since_ms: int | None = None,
             until_ms: int | None = None) -> dict[str, np.ndarray]:
        """Columns (``ts``, ``open`` ... ``volume``) in ``[since_ms, until_ms)``, ascending, deduplicated.

        Raises ``NoCandlesError`` when the range holds no candle.
        """
        if self.kind == "store":
            arrays = self._from_store(symbol, timeframe)
        else:
            arrays = load_ohlcv_arrays(candle_file(self.data_dir, self.exchange, symbol, timeframe))
        ts = arrays["ts"]
        sel = np.ones(len(ts), dtype=bool)
        if since_ms is not None:
            sel &= ts >= since_ms
        if until_ms is not None:
            sel &= ts < until_ms
        if not sel.any():
            span = f"it holds {_iso(int(ts[0]))} -> {_iso(int(ts[-1]))}" if len(ts) else "it holds none"
            raise NoCandlesError(
                f"{self.where(symbol, timeframe)}: no candles in {_range(since_ms, until_ms)}; {span};"
                " choose dates inside it (--from/--to or [backtest] start/end)")
        return {k: v[sel] for k, v in arrays.items()}

    def _from_store(self, symbol: str, timeframe: str) -> dict[str, np.ndarray]:
        if not self.store_path.is_file():
            raise NoCandlesError(f"store {self.store_path} does not exist; fill it with `neuralbot download`"
                                 ' or `neuralbot import`, or set [data] source = "files"')
        try:
            with sqlite3.connect(f"file:{self.store_path}?mode=ro", uri=True) as db:
                rows = db.execute(
                    f"SELECT {', '.join(OHLCV_FIELDS[1:])}, ts FROM candles"
                    " WHERE exchange = ? AND symbol = ? AND timeframe = ? ORDER BY ts",
                    (self.exchange, symbol, timeframe)).fetchall()
        except sqlite3.DatabaseError as exc:
            raise NoCandlesError(f"store {self.store_path}: cannot read candles ({exc})") from None
        data = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
        arrays = {k: data[:, i] for i, k in enumerate(COLUMNS[1:])}
        arrays["ts"] = data[:, 5].astype(np.int64)
        return arrays


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _range(since_ms: int | None, until_ms: int | None) -> str:
    lo = "the start" if since_ms is None else _iso(since_ms)
    hi = "the end" if until_ms is None else _iso(until_ms)
    return f"[{lo}, {hi})"
