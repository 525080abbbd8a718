"""Reading the normalised candle CSVs (``timestamp,open,high,low,close,volume``).

The files in ``../shared/data/ohlcv/<exchange>/<BASE>_<QUOTE>-<tf>.csv.gz`` are read
as they are published: not cleaned. Rows are returned sorted by time with exact
duplicates of a timestamp collapsed to the first one seen (the source overlaps two
exports in late 2020); validity of individual bars is judged downstream
(``Candle.problem`` / ``CandleBuffer``), where a rejection is logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import numpy as np

from bot.marketdata.candle_files import MAX_TS_MS, MIN_TS_MS, CandleFileError, check_ts, parse_number, read_lines
from bot.core.events import Candle

OHLCV_FIELDS = ("timestamp", "open", "high", "low", "close", "volume")


def candle_file(data_dir: Path, exchange: str, symbol: str, timeframe: str) -> Path:
    """Path of the normalised file for ``symbol`` (e.g. ``BTC/USDT``) and ``timeframe``."""
    name = f"{symbol.replace('/', '_')}-{timeframe}.csv.gz"
    return Path(data_dir) / "ohlcv" / exchange / name


def load_ohlcv_arrays(path: Path | str) -> dict[str, np.ndarray]:
    """Columns of a normalised CSV(.gz), sorted by timestamp, first of each duplicate kept.

    A file that is not such a CSV raises ``CandleFileError`` naming the line and the problem.
    """
    path = Path(path)
    lines = read_lines(path)
    header = lines[0].strip()
    if tuple(h.strip().lower() for h in header.split(",")) != OHLCV_FIELDS:
        fix = "separate fields with commas, not semicolons" if ";" in header else \
            f"the first line must be the header {','.join(OHLCV_FIELDS)}"
        raise CandleFileError(path, f"header {header[:80]!r}: {fix}", 1)
    numbered = [(n, line) for n, line in enumerate(lines[1:], start=2) if line.strip()]
    try:
        raw = np.loadtxt([line for _, line in numbered], delimiter=",", dtype=np.float64, ndmin=2,
                         comments=None) if numbered else np.zeros((0, 6))
    except ValueError:
        raw = None
    if raw is None or raw.shape[1] != len(OHLCV_FIELDS):
        _raise_first_bad_row(path, numbered)
    ts_col = raw[:, 0]
    with np.errstate(invalid="ignore"):
        on_calendar = (ts_col >= MIN_TS_MS) & (ts_col < MAX_TS_MS) & (ts_col == np.floor(ts_col))
    if not on_calendar.all():
        i = int(np.flatnonzero(~on_calendar)[0])
        check_ts(float(ts_col[i]), path, numbered[i][0])
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


def _raise_first_bad_row(path: Path, numbered: list[tuple[int, str]]) -> NoReturn:
    """Find and report the first line numpy could not read (the slow path, errors only)."""
    for n, line in numbered:
        parts = line.split(",")
        if len(parts) != len(OHLCV_FIELDS):
            raise CandleFileError(path, f"{len(parts)} fields, expected {len(OHLCV_FIELDS)}"
                                        f" ({','.join(OHLCV_FIELDS)})", n)
        for name, text in zip(OHLCV_FIELDS, parts, strict=True):
            parse_number(text, name, path, n)
    raise CandleFileError(path, "not a comma-separated file of numbers")


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
