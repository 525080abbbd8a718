"""Reading the normalised candle CSVs (``timestamp,open,high,low,close,volume``).

The files in ``../shared/data/ohlcv/<exchange>/<BASE>_<QUOTE>-<tf>.csv.gz`` are read
as they are published: not cleaned. Rows are returned sorted by time with exact
duplicates of a timestamp collapsed to the first one seen (the source overlaps two
exports in late 2020); validity of individual bars is judged downstream
(``Candle.problem`` / ``CandleBuffer``), where a rejection is logged.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from bot.events import Candle

OHLCV_FIELDS = ("timestamp", "open", "high", "low", "close", "volume")


def candle_file(data_dir: Path, exchange: str, symbol: str, timeframe: str) -> Path:
    """Path of the normalised file for ``symbol`` (e.g. ``BTC/USDT``) and ``timeframe``."""
    name = f"{symbol.replace('/', '_')}-{timeframe}.csv.gz"
    return Path(data_dir) / "ohlcv" / exchange / name


def load_ohlcv_arrays(path: Path | str) -> dict[str, np.ndarray]:
    """Columns of a normalised CSV(.gz), sorted by timestamp, first of each duplicate kept."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"candle file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as fh:  # type: ignore[operator]
        header = fh.readline().strip().split(",")
        if tuple(h.strip().lower() for h in header) != OHLCV_FIELDS:
            raise ValueError(
                f"{path}: expected header {','.join(OHLCV_FIELDS)}, got {','.join(header)}"
            )
        raw = np.loadtxt(fh, delimiter=",", dtype=np.float64, ndmin=2)
    if raw.size == 0:
        raw = np.zeros((0, 6))
    ts = raw[:, 0].astype(np.int64)
    order = np.argsort(ts, kind="stable")
    raw, ts = raw[order], ts[order]
    keep = np.ones(len(ts), dtype=bool)
    keep[1:] = ts[1:] != ts[:-1]
    raw, ts = raw[keep], ts[keep]
    return {
        "ts": ts,
        "open": raw[:, 1],
        "high": raw[:, 2],
        "low": raw[:, 3],
        "close": raw[:, 4],
        "volume": raw[:, 5],
    }


def arrays_to_candles(
    arrays: dict[str, np.ndarray], exchange: str, symbol: str, timeframe: str
) -> list[Candle]:
    cols = [arrays[k].tolist() for k in ("ts", "open", "high", "low", "close", "volume")]
    return [
        Candle(exchange, symbol, timeframe, int(t), o, h, lo, c, v)
        for t, o, h, lo, c, v in zip(*cols, strict=True)
    ]


def load_candles_csv(
    path: Path | str,
    exchange: str = "binance",
    symbol: str = "BTC/USDT",
    timeframe: str = "1h",
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> list[Candle]:
    """Candles of a normalised CSV within ``[since_ms, until_ms)``, in time order."""
    arrays = load_ohlcv_arrays(path)
    mask = np.ones(len(arrays["ts"]), dtype=bool)
    if since_ms is not None:
        mask &= arrays["ts"] >= since_ms
    if until_ms is not None:
        mask &= arrays["ts"] < until_ms
    return arrays_to_candles({k: v[mask] for k, v in arrays.items()}, exchange, symbol, timeframe)
