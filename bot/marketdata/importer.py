"""Importing candle files: the normalised CSVs and the messy cryptodatadownload originals.

``read_candle_file`` understands both formats (gzip or not): the normalised
``timestamp,open,high,low,close,volume`` files, and cryptodatadownload's
``unix,date,symbol,open,high,low,close,Volume <BASE>,Volume <QUOTE>,tradecount``
files, newest row first, optionally preceded by a URL line, with the unix column in
seconds (float) for old rows and milliseconds for newer ones and ``NULL`` fields.
``bot.marketdata.quality`` then reports and treats the defects.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.marketdata.candle_files import CandleFileError, check_ts, parse_number, read_lines

SECONDS_CUTOFF = 100_000_000_000  # unix values below this are seconds, above milliseconds


@dataclass(frozen=True, slots=True)
class RawCandles:
    """Rows of a file as read: ascending by time (stable), duplicates and defects kept."""

    ts: np.ndarray  # int64 ms
    ohlcv: np.ndarray  # float64 (n, 5); NaN where the source had NULL/empty
    source_format: str  # "normalised" | "cryptodatadownload"
    path: Path  # where the rows came from (named in every error)
    lines: np.ndarray  # int64: the line of the file each row was read from


def _num(text: str, column: str, path: Path, line: int) -> float:
    text = text.strip()
    if not text or text.upper() in ("NULL", "NAN", "NONE"):
        return math.nan
    return parse_number(text, column, path, line)


def to_ms(unix: float) -> int:
    """Unix time in seconds or milliseconds (detected by magnitude) to milliseconds."""
    return int(round(unix * 1000)) if abs(unix) < SECONDS_CUTOFF else int(round(unix))


def read_candle_file(path: Path | str) -> RawCandles:
    """Every candle row of ``path``; any unreadable line is a ``CandleFileError`` naming it."""
    path = Path(path)
    lines = read_lines(path)
    header_at = None
    for i, line in enumerate(lines[:10]):
        first = line.split(",")[0].strip().lower()
        if first in ("timestamp", "unix", "unix timestamp", "date"):
            header_at = i
            break
    if header_at is None:
        fix = "separate fields with commas, not semicolons" if ";" in lines[0] else \
            "expected timestamp,open,high,low,close,volume or cryptodatadownload's unix,date,symbol,..."
        raise CandleFileError(path, f"no recognised header in the first lines; {fix}", 1)
    header = [h.strip().lower() for h in next(csv.reader([lines[header_at]]))]
    vol = [i for i, h in enumerate(header) if h.startswith("volume") and not h.endswith(("usdt", "usd", "busd"))]
    if header[:6] == ["timestamp", "open", "high", "low", "close", "volume"]:
        fmt, cols = "normalised", [1, 2, 3, 4, 5]
    elif header[0].startswith("unix") and {"open", "high", "low", "close"} <= set(header) and vol:
        fmt = "cryptodatadownload"
        cols = [header.index(k) for k in ("open", "high", "low", "close")] + vol[:1]
    else:
        raise CandleFileError(path, f"unknown header {lines[header_at][:80]!r}; expected"
                                    " timestamp,open,high,low,close,volume", header_at + 1)
    names = [header[c] for c in cols]
    ts: list[int] = []
    rows: list[list[float]] = []
    numbers: list[int] = []
    for n, record in enumerate(csv.reader(lines[header_at + 1:]), start=header_at + 2):
        if not record or not any(field.strip() for field in record):
            continue
        if len(record) != len(header):
            raise CandleFileError(path, f"{len(record)} fields, the header has {len(header)}", n)
        unix = parse_number(record[0], header[0], path, n)
        ts.append(check_ts(to_ms(unix) if math.isfinite(unix) else unix, path, n))
        rows.append([_num(record[c], name, path, n) for c, name in zip(cols, names, strict=True)])
        numbers.append(n)
    ts_arr = np.asarray(ts, dtype=np.int64)
    ohlcv = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    line_arr = np.asarray(numbers, dtype=np.int64)
    order = np.argsort(ts_arr, kind="stable")
    if fmt == "cryptodatadownload":
        # newest first: reverse before the stable sort so twins keep file order reversed
        order = np.argsort(ts_arr[::-1], kind="stable")
        ts_arr, ohlcv, line_arr = ts_arr[::-1], ohlcv[::-1], line_arr[::-1]
    return RawCandles(ts_arr[order], ohlcv[order], fmt, path, line_arr[order])
