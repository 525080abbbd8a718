"""External confirmation of signals: on-chain and sentiment data, the 2-of-3 rule.

Nothing here fetches data. A :class:`ConfirmationSource` answers "what was the
latest value known at instant ``ts``?"; :class:`CsvSource` reads it from a CSV
file (``timestamp,value``; timestamps in ms since the epoch or ISO dates, UTC).
A value stamped ``T`` is treated as known from ``T + delay`` (publication lag),
and never before, so a backtest cannot peek ahead; a value older than
``max_age`` counts as missing.

A :class:`ConfirmationRule` turns a source into a yes/no check (``above`` /
``below`` a threshold, ``rising`` / ``falling`` over a look-back); e.g. whales
accumulating = whale net flow ``rising``, exchange reserves ``falling``, MVRV Z
``below`` 1. :func:`confirm` counts aligned rules: a long entry needs at least
``min_aligned`` (default 2 of 3); a rule without data does not align.

:class:`SentimentOverride` scales the size in extreme sentiment (fear & greed
above 90 -> half size by default; a multiplier of 0 blocks entries).

:class:`ConfirmedStrategy` (kind ``confirmed``) wraps any strategy: its long
entries are kept only when confirmed, scaled by the sentiment override; exits
and holds pass through untouched.
"""

from __future__ import annotations

import bisect
import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from bot.core.events import Direction, OrderBook, Signal, Trade
from strategies.base import BarContext, Strategy
from strategies.catalog import build_strategy

TESTS = ("above", "below", "rising", "falling")
_UNITS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def parse_duration(value: str | int | float) -> int:
    """``"2d"`` / ``"12h"`` / ``"1w"`` / ``"30m"`` or a number of ms -> ms."""
    if isinstance(value, (int, float)):
        return int(value)
    text = value.strip().lower()
    if len(text) >= 2 and text[-1] in _UNITS and text[:-1].replace(".", "", 1).isdigit():
        return int(float(text[:-1]) * _UNITS[text[-1]])
    raise ValueError(f"not a duration: {value!r} (use e.g. '12h', '2d', '1w')")


def parse_timestamp(text: str) -> int:
    """Milliseconds since the epoch, or an ISO date/datetime (UTC when naive) -> ms."""
    t = text.strip()
    if t.lstrip("-").isdigit():
        return int(t)
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


class ConfirmationSource(Protocol):
    name: str

    def value_at(self, ts: int) -> float | None:
        """Latest value known at instant ``ts`` (ms), or ``None`` if none (or too old)."""
        ...


class CsvSource:
    """A time series from a CSV file with a header row."""

    def __init__(
        self, name: str, path: str | Path, column: str = "value", ts_column: str = "timestamp",
        delay: str | int = 0, max_age: str | int = "3d",
    ) -> None:
        self.name, self.path = name, Path(path)
        self.delay, self.max_age = parse_duration(delay), parse_duration(max_age)
        if not self.path.is_file():
            raise ValueError(f"confirmation source {name!r}: file not found: {self.path}")
        rows: list[tuple[int, float]] = []
        with self.path.open(newline="") as fh:
            reader = csv.DictReader(fh)
            missing = {column, ts_column} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{self.path}: missing column(s) {sorted(missing)}; has {reader.fieldnames}")
            for i, row in enumerate(reader, start=2):
                raw = (row[column] or "").strip()
                if raw == "":
                    continue
                try:
                    value = float(raw)
                    stamp = parse_timestamp(row[ts_column])
                except ValueError as exc:
                    raise ValueError(f"{self.path}:{i}: {exc}") from None
                if math.isfinite(value):
                    rows.append((stamp + self.delay, value))
        rows.sort()
        self._ts = [t for t, _ in rows]
        self._values = [v for _, v in rows]

    def __len__(self) -> int:
        return len(self._ts)

    def value_at(self, ts: int) -> float | None:
        i = bisect.bisect_right(self._ts, ts) - 1
        if i < 0 or ts - self._ts[i] > self.max_age:
            return None
        return self._values[i]


@dataclass(frozen=True, slots=True)
class ConfirmationRule:
    source: ConfirmationSource
    test: str  # above | below | rising | falling
    threshold: float = 0.0
    lookback_ms: int = 86_400_000

    def __post_init__(self) -> None:
        if self.test not in TESTS:
            raise ValueError(f"confirmation test must be one of {TESTS}, got {self.test!r}")

    def check(self, ts: int) -> bool | None:
        """True/False when the data is there, ``None`` when it is missing."""
        now = self.source.value_at(ts)
        if now is None:
            return None
        if self.test == "above":
            return now > self.threshold
        if self.test == "below":
            return now < self.threshold
        before = self.source.value_at(ts - self.lookback_ms)
        if before is None:
            return None
        return now > before if self.test == "rising" else now < before


@dataclass(frozen=True, slots=True)
class Confirmation:
    aligned: int
    available: int
    total: int
    passed: bool
    details: dict[str, str]  # source name -> "yes" | "no" | "n/a"

    def describe(self) -> str:
        return f"{self.aligned}/{self.total} confirmations aligned ({self.available} with data)"


def confirm(rules: Sequence[ConfirmationRule], ts: int, min_aligned: int = 2) -> Confirmation:
    """Count aligned rules at ``ts``; ``passed`` when at least ``min_aligned`` align."""
    details: dict[str, str] = {}
    aligned = available = 0
    for rule in rules:
        ok = rule.check(ts)
        details[rule.source.name] = "n/a" if ok is None else ("yes" if ok else "no")
        available += ok is not None
        aligned += bool(ok)
    return Confirmation(aligned, available, len(rules), aligned >= min_aligned, details)


@dataclass(frozen=True, slots=True)
class SentimentOverride:
    """Size multipliers in extreme sentiment (e.g. fear & greed index, 0-100)."""

    source: ConfirmationSource
    greed_above: float | None = 90.0
    greed_multiplier: float = 0.5
    fear_below: float | None = None
    fear_multiplier: float = 1.0

    def multiplier(self, ts: int) -> tuple[float, str]:
        v = self.source.value_at(ts)
        if v is None:
            return 1.0, ""
        if self.greed_above is not None and v > self.greed_above:
            return self.greed_multiplier, f"{self.source.name} {v:g} > {self.greed_above:g}"
        if self.fear_below is not None and v < self.fear_below:
            return self.fear_multiplier, f"{self.source.name} {v:g} < {self.fear_below:g}"
        return 1.0, ""


def rule_from_params(p: Mapping[str, Any]) -> ConfirmationRule:
    """``{name, path, test, column?, ts_column?, threshold?, lookback?, delay?, max_age?}``."""
    allowed = {"name", "path", "test", "column", "ts_column", "threshold", "lookback", "delay", "max_age"}
    unknown = set(p) - allowed
    if unknown:
        raise ValueError(f"confirmation source: unknown key(s) {sorted(unknown)}; allowed {sorted(allowed)}")
    src = CsvSource(str(p["name"]), p["path"], p.get("column", "value"), p.get("ts_column", "timestamp"),
                    p.get("delay", 0), p.get("max_age", "3d"))
    return ConfirmationRule(src, str(p["test"]), float(p.get("threshold", 0.0)),
                            parse_duration(p.get("lookback", "1d")))


class ConfirmedStrategy(Strategy):
    """Wrap ``inner``: long entries need ``min_aligned`` confirmations; sentiment scales size."""

    def __init__(
        self, name: str, symbols: tuple[str, ...], timeframe: str, inner: Mapping[str, Any],
        sources: Sequence[Mapping[str, Any]] = (), min_aligned: int = 2,
        sentiment: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(name, symbols, timeframe)
        if "kind" not in inner:
            raise ValueError("inner: give the wrapped strategy as { kind = ..., params = { ... } }")
        self.inner = build_strategy(str(inner["kind"]), name, symbols, timeframe,
                                    dict(inner.get("params", {})), where=f"{name}.inner")
        self.rules = [rule_from_params(s) for s in sources]
        if not 0 <= min_aligned <= len(self.rules):
            raise ValueError(f"min_aligned must be in [0, {len(self.rules)}], got {min_aligned}")
        self.min_aligned = min_aligned
        self.sentiment: SentimentOverride | None = None
        if sentiment:
            s = dict(sentiment)
            src = CsvSource(str(s.pop("name", "sentiment")), s.pop("path"), s.pop("column", "value"),
                            s.pop("ts_column", "timestamp"), s.pop("delay", 0), s.pop("max_age", "3d"))
            self.sentiment = SentimentOverride(src, **s)
        self.warmup = self.inner.warmup
        self.default_size_pct = self.inner.default_size_pct

    # the wrapper keeps no state of its own: warm-up and market data are the inner strategy's
    def history_bars(self) -> int:
        return self.inner.history_bars()

    def warm(self, ctx: BarContext) -> None:
        self.inner.warm(ctx)

    def market_streams(self) -> frozenset[str]:
        return self.inner.market_streams()

    def on_market(self, event: OrderBook | Trade) -> None:
        self.inner.on_market(event)

    def evaluate(self, ctx: BarContext) -> Signal | None:
        sig = self.inner.evaluate(ctx)
        if sig is None or sig.direction is not Direction.LONG or sig.size_pct <= 0:
            return sig
        ts = ctx.candle.close_ts
        c = confirm(self.rules, ts, self.min_aligned)
        votes = dict(sig.votes) | {f"confirm:{k}": v for k, v in c.details.items()}
        reason = f"{sig.reason}; {c.describe()}"
        if not c.passed:
            reason += f" < {self.min_aligned}: not acted"
            return replace(sig, size_pct=0.0, votes=votes, reason=reason)
        size = sig.size_pct
        if self.sentiment is not None:
            mult, why = self.sentiment.multiplier(ts)
            if why:
                size *= mult
                reason += f"; sentiment override x{mult:g} ({why})"
        return replace(sig, size_pct=round(size, 4), votes=votes, reason=reason)
