"""Importing candle files: the normalised CSVs and the messy cryptodatadownload originals.

``read_candle_file`` understands both formats (gzip or not): the normalised
``timestamp,open,high,low,close,volume`` files, and cryptodatadownload's
``unix,date,symbol,open,high,low,close,Volume <BASE>,Volume <QUOTE>,tradecount``
files, newest row first, optionally preceded by a URL line, with the unix column in
seconds (float) for old rows and milliseconds for newer ones and ``NULL`` fields.
``bot.quality`` then reports and treats the defects.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SECONDS_CUTOFF = 100_000_000_000  # unix values below this are seconds, above milliseconds


@dataclass(frozen=True, slots=True)
class RawCandles:
    """Rows of a file as read: ascending by time (stable), duplicates and defects kept."""

    ts: np.ndarray  # int64 ms
    ohlcv: np.ndarray  # float64 (n, 5); NaN where the source had NULL/empty
    source_format: str  # "normalised" | "cryptodatadownload"
    skipped_lines: int  # unparseable lines (reported)


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", newline="")  # type: ignore[return-value]
    return open(path, newline="")  # noqa: SIM115


def _num(text: str) -> float:
    text = text.strip()
    if not text or text.upper() in ("NULL", "NAN", "NONE"):
        return math.nan
    return float(text)


def to_ms(unix: float) -> int:
    """Unix time in seconds or milliseconds (detected by magnitude) to milliseconds."""
    return int(round(unix * 1000)) if abs(unix) < SECONDS_CUTOFF else int(round(unix))


def read_candle_file(path: Path | str) -> RawCandles:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    with _open_text(path) as fh:
        lines = fh.read().splitlines()
    header_at = None
    for i, line in enumerate(lines[:10]):
        first = line.split(",")[0].strip().lower()
        if first in ("timestamp", "unix", "unix timestamp", "date"):
            header_at = i
            break
    if header_at is None:
        raise ValueError(f"{path}: no recognised header in the first lines")
    header = [h.strip().lower() for h in next(csv.reader([lines[header_at]]))]
    if header[:6] == ["timestamp", "open", "high", "low", "close", "volume"]:
        fmt, idx_ts, cols = "normalised", 0, [1, 2, 3, 4, 5]
    elif header[0].startswith("unix") and "open" in header:
        fmt, idx_ts = "cryptodatadownload", 0
        vol = next(i for i, h in enumerate(header) if h.startswith("volume") and h != "volume usdt"
                   and not h.endswith(("usdt", "usd", "busd")))
        cols = [header.index(k) for k in ("open", "high", "low", "close")] + [vol]
    else:
        raise ValueError(f"{path}: unknown header {lines[header_at]!r}")
    ts: list[int] = []
    rows: list[list[float]] = []
    skipped = 0
    for record in csv.reader(lines[header_at + 1:]):
        if not record or not record[0].strip():
            continue
        try:
            t = to_ms(float(record[idx_ts]))
            values = [_num(record[c]) for c in cols]
        except (ValueError, IndexError):
            skipped += 1
            continue
        ts.append(t)
        rows.append(values)
    ts_arr = np.asarray(ts, dtype=np.int64)
    ohlcv = np.asarray(rows, dtype=np.float64).reshape(-1, 5)
    order = np.argsort(ts_arr, kind="stable")
    if fmt == "cryptodatadownload":
        # newest first: reverse before the stable sort so twins keep file order reversed
        order = np.argsort(ts_arr[::-1], kind="stable")
        ts_arr, ohlcv = ts_arr[::-1], ohlcv[::-1]
    return RawCandles(ts_arr[order], ohlcv[order], fmt, skipped)
