"""Binance market stream names the loopback exchange serves, parsed and validated."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.sim.klines import INTERVAL_MS

ROLLING_WINDOWS = ("1h", "4h", "1d")
_SIMPLE = ("trade", "aggTrade", "bookTicker", "ticker", "miniTicker", "avgPrice")
_DEPTH = re.compile(r"^depth(?P<levels>5|10|20)?(@(?P<speed>100ms|1000ms))?$")


@dataclass(frozen=True, slots=True)
class Stream:
    name: str  # as subscribed (symbol lower-cased), the name pushes carry
    mid: str | None  # BTCUSDT; None for the all-market streams
    kind: str  # trade, aggTrade, kline, depth, partial, bookTicker, ticker, miniTicker, ...
    arg: str = ""  # kline interval, rolling window, partial-book levels
    every_ms: int = 1000  # push cadence of depth and partial-book streams


def normalise_stream(name: str) -> str:
    sym, at, rest = name.strip().partition("@")
    return f"{sym.lower()}{at}{rest}" if not sym.startswith("!") else name.strip()


def parse_stream(name: str, markets: set[str]) -> Stream | str:
    """The stream ``name`` denotes, or why it is not served."""
    if name in ("!ticker@arr", "!miniTicker@arr"):
        return Stream(name, None, name[1:-4] + "_arr")
    sym, _, rest = name.partition("@")
    mid = sym.upper()
    if mid not in markets:
        return f"Invalid request: unknown symbol in stream name '{name}'"
    if rest in _SIMPLE:
        return Stream(name, mid, rest)
    if rest.startswith("kline_") and rest[6:] in INTERVAL_MS:
        return Stream(name, mid, "kline", rest[6:])
    if rest.startswith("ticker_") and rest[7:] in ROLLING_WINDOWS:
        return Stream(name, mid, "rolling", rest[7:])
    m = _DEPTH.match(rest)
    if m is not None:
        every = 100 if m["speed"] == "100ms" else 1000
        if m["levels"]:
            return Stream(name, mid, "partial", m["levels"], every)
        return Stream(name, mid, "depth", "", every)
    return f"Invalid request: stream '{name}' is not served by the loopback exchange"
