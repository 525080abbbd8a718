"""The real data the loopback exchange serves: candle files and recorded websocket traffic."""

from __future__ import annotations

import functools
import gzip
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

try:
    import orjson

    _loads = orjson.loads
except ImportError:  # pragma: no cover - orjson ships with ccxt's extras, not guaranteed
    _loads = json.loads

from bot.marketdata.candle_csv import load_ohlcv_arrays
from bot.core.events import TIMEFRAME_MS

_CANDLE_FILE = re.compile(r"^(?P<base>[A-Z0-9]+)_(?P<quote>[A-Z0-9]+)-(?P<tf>\w+)\.csv(\.gz)?$")
_ENVELOPE = '{"stream":"'
_BOOK_FILE = re.compile(r"^(?P<sym>[a-z0-9]+)_(?P<day>\d+)\.gz$")


@dataclass(frozen=True, slots=True)
class CandleSeries:
    """One symbol/timeframe: sorted, de-duplicated columns (first of each twin kept)."""

    symbol: str
    timeframe: str
    ts: np.ndarray
    ohlcv: np.ndarray  # shape (n, 5): open, high, low, close, volume

    @property
    def tf_ms(self) -> int:
        return TIMEFRAME_MS[self.timeframe]

    def index_at_or_after(self, ts_ms: int) -> int:
        return int(np.searchsorted(self.ts, ts_ms, side="left"))


class RecordedLine:
    """One recorded message; the payload is parsed on first use (parsing all takes seconds)."""

    __slots__ = ("recv_ns", "stream", "raw", "_data")

    def __init__(self, recv_ns: int, stream: str | None, raw: str) -> None:
        self.recv_ns = recv_ns
        self.stream = stream  # None for the REST snapshot line
        self.raw = raw  # the JSON text after the timestamp, verbatim
        self._data: dict | None = None

    @property
    def data(self) -> dict:
        """The parsed payload: the envelope's ``data``, or the snapshot itself."""
        if self._data is None:
            parsed = _loads(self.raw)
            self._data = parsed["data"] if self.stream is not None else parsed
        return self._data


@dataclass(frozen=True, slots=True)
class Recording:
    """Recorded Binance traffic of one market id (e.g. ``BTCUSDT``), files concatenated."""

    market_id: str
    lines: tuple[RecordedLine, ...]

    @property
    def snapshot_index(self) -> int | None:
        for i, line in enumerate(self.lines):
            if line.stream is None:
                return i
        return None


def market_id(symbol: str) -> str:
    return symbol.replace("/", "").upper()


def load_candle_series(
    data_dir: Path, exchange: str, symbols: tuple[str, ...] = (), timeframes: tuple[str, ...] = ()
) -> dict[tuple[str, str], CandleSeries]:
    """Candle files under ``ohlcv/<exchange>`` (cached: the data is read-only)."""
    return dict(_load_candle_series(Path(data_dir).resolve(), exchange, symbols, timeframes))


@functools.lru_cache(maxsize=8)
def _load_candle_series(
    data_dir: Path, exchange: str, symbols: tuple[str, ...], timeframes: tuple[str, ...]
) -> dict[tuple[str, str], CandleSeries]:
    out: dict[tuple[str, str], CandleSeries] = {}
    folder = Path(data_dir) / "ohlcv" / exchange
    if not folder.is_dir():
        return out
    for path in sorted(folder.iterdir()):
        m = _CANDLE_FILE.match(path.name)
        if m is None or m["tf"] not in TIMEFRAME_MS:
            continue
        symbol = f"{m['base']}/{m['quote']}"
        if (symbols and symbol not in symbols) or (timeframes and m["tf"] not in timeframes):
            continue
        cols = load_ohlcv_arrays(path)
        ohlcv = np.column_stack([cols[k] for k in ("open", "high", "low", "close", "volume")])
        out[(symbol, m["tf"])] = CandleSeries(symbol, m["tf"], cols["ts"], ohlcv)
    return out


def load_recordings(data_dir: Path, exchange: str = "binance") -> dict[str, Recording]:
    """All recordings under ``orderbook/<exchange>-spot``, keyed by upper-case market id.

    Cached per process: the recordings are read-only and take seconds to parse.
    """
    return dict(_load_recordings(Path(data_dir).resolve(), exchange))


@functools.lru_cache(maxsize=4)
def _load_recordings(data_dir: Path, exchange: str) -> dict[str, Recording]:
    folder = Path(data_dir) / "orderbook" / f"{exchange}-spot"
    if not folder.is_dir():
        return {}
    files: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        m = _BOOK_FILE.match(path.name)
        if m is not None:
            files.setdefault(m["sym"].upper(), []).append(path)
    return {mid: read_recording(mid, paths) for mid, paths in files.items()}


def read_recording(mid: str, paths: list[Path]) -> Recording:
    lines: list[RecordedLine] = []
    for path in paths:
        with gzip.open(path, "rt") as fh:
            for text in fh:
                stamp, _, raw = text.rstrip("\n").partition(" ")
                if not raw:
                    continue
                if raw.startswith(_ENVELOPE):
                    stream = raw[len(_ENVELOPE):raw.index('"', len(_ENVELOPE))]
                    lines.append(RecordedLine(int(stamp), stream, raw))
                else:
                    lines.append(RecordedLine(int(stamp), None, raw))
    return Recording(mid, tuple(lines))
