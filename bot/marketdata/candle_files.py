"""Reading candle files as text, safely: every defect of the file is a ``CandleFileError``.

One place decides what a readable candle file is (gzip or plain, UTF-8 with or without a
BOM, text not binary, timestamps on the calendar) so ``bot.marketdata.candle_csv`` (the normalised files
backtest, train and evaluate read) and ``bot.marketdata.importer`` (both formats) report a bad file
the same way: one line naming the file, the line and the problem.
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

from bot.core.errors import UserInputError

# Open times before Bitcoin's genesis block or from 2100 on are not candles but corrupt values.
MIN_TS_MS = 1_230_940_800_000  # 2009-01-03
MAX_TS_MS = 4_102_444_800_000  # 2100-01-01


class CandleFileError(UserInputError):
    """A candle file that cannot be read as candles; the message names file, line, problem."""

    def __init__(self, path: Path | str, problem: str, line: int | None = None) -> None:
        self.path, self.line, self.problem = Path(path), line, problem
        where = f"{path}: line {line}" if line is not None else str(path)
        super().__init__(f"{where}: {problem}")


def read_lines(path: Path | str) -> list[str]:
    """The text lines of a candle file (gzip detected by content, not name)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"candle file not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CandleFileError(path, f"cannot read ({exc.strerror})") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise CandleFileError(path, f"truncated or corrupt gzip ({exc}); fetch or export the file"
                                        " again") from None
    if b"\x00" in data:
        line = data[:data.index(b"\x00")].count(b"\n") + 1
        raise CandleFileError(path, "binary data (NUL byte), not a CSV text file", line)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise CandleFileError(path, f"byte 0x{data[exc.start]:02x} is not UTF-8 text; save the file as"
                                    " UTF-8 CSV", line) from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise CandleFileError(path, "empty file; expected a header and one candle per line")
    return lines


def check_ts(value: float, path: Path | str, line: int) -> int:
    """``value`` (ms since the epoch) as an int, or a ``CandleFileError`` for ``line``."""
    if not math.isfinite(value) or value != int(value) or not MIN_TS_MS <= value < MAX_TS_MS:
        raise CandleFileError(path, f"timestamp {value:.15g} is not a millisecond open time between"
                                    " 2009 and 2100", line)
    return int(value)


def parse_number(text: str, column: str, path: Path | str, line: int) -> float:
    try:
        return float(text)
    except ValueError:
        raise CandleFileError(path, f"{column} {text.strip()[:40]!r} is not a number", line) from None
