"""Confirmation sources: CSV-backed series, no look-ahead, the 2-of-3 rule, sentiment override."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.core.buffer import CandleBuffer
from bot.core.events import Candle, Direction
from strategies.base import BarContext
from strategies.catalog import build_strategy
from strategies.confirmation import (
    ConfirmationRule,
    CsvSource,
    SentimentOverride,
    confirm,
    parse_duration,
)

D = 86_400_000
T0 = 1_609_459_200_000  # 2021-01-01 00:00 UTC


def write(path: Path, rows: list[tuple[object, object]], header: str = "timestamp,value") -> Path:
    path.write_text(header + "\n" + "".join(f"{t},{v}\n" for t, v in rows))
    return path


def test_csv_source_never_looks_ahead_and_honours_delay_and_age(tmp_path: Path) -> None:
    f = write(tmp_path / "s.csv", [("2021-01-02", 5.0), (T0, 1.0), (T0 + 3 * D, "")])
    src = CsvSource("s", f, max_age="2d")
    assert src.value_at(T0 - 1) is None  # before the first observation
    assert src.value_at(T0) == 1.0
    assert src.value_at(T0 + D - 1) == 1.0  # the next value is not known yet
    assert src.value_at(T0 + D) == 5.0  # ISO dates are UTC midnights
    assert src.value_at(T0 + 4 * D) is None  # blank row skipped; last value too old
    late = CsvSource("s", f, delay="12h", max_age="2d")
    assert late.value_at(T0 + D) == 1.0 and late.value_at(T0 + D + D // 2) == 5.0


@pytest.mark.parametrize(
    ("text", "error"),
    [
        pytest.param("time,value\n1,2\n", "missing column", id="wrong-header"),
        pytest.param("timestamp,value\nyesterday,2\n", ":2:", id="bad-timestamp-line-number"),
    ],
)
def test_csv_errors_name_the_problem(tmp_path: Path, text: str, error: str) -> None:
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(ValueError, match=error):
        CsvSource("bad", tmp_path / "bad.csv")


class Fixed:
    """A source with a fixed series (the CSV implementation is tested above)."""

    def __init__(self, name: str, now: float | None, before: float | None = None) -> None:
        self.name, self.now, self.before = name, now, before

    def value_at(self, ts: int) -> float | None:
        return self.now if ts > T0 else self.before


def rules(whales: float | None, reserves: float | None, mvrv: float | None) -> list[ConfirmationRule]:
    return [
        ConfirmationRule(Fixed("whales", whales, 0.0), "rising", lookback_ms=D),
        ConfirmationRule(Fixed("reserves", reserves, 100.0), "falling", lookback_ms=D),
        ConfirmationRule(Fixed("mvrv", mvrv), "below", threshold=1.0),
    ]


@pytest.mark.parametrize(
    ("whales", "reserves", "mvrv", "aligned", "passed"),
    [
        pytest.param(5.0, 90.0, 0.8, 3, True, id="3of3"),
        pytest.param(5.0, 90.0, 1.5, 2, True, id="2of3-passes"),
        pytest.param(-5.0, 110.0, 0.8, 1, False, id="1of3-fails"),
        pytest.param(-5.0, 110.0, 1.5, 0, False, id="0of3-fails"),
        pytest.param(5.0, None, None, 1, False, id="missing-data-does-not-align"),
        pytest.param(0.0, 100.0, 1.0, 0, False, id="unchanged-and-equal-edges-do-not-align"),
    ],
)
def test_two_of_three_rule(whales, reserves, mvrv, aligned, passed) -> None:
    c = confirm(rules(whales, reserves, mvrv), T0 + D, min_aligned=2)
    assert (c.aligned, c.passed, c.total) == (aligned, passed, 3)


@pytest.mark.parametrize(
    ("index", "multiplier"),
    [
        pytest.param(95.0, 0.5, id="extreme-greed-halves"),
        pytest.param(90.0, 1.0, id="edge-90-not-extreme"),
        pytest.param(50.0, 1.0, id="neutral"),
        pytest.param(5.0, 0.0, id="extreme-fear-blocks-when-configured"),
        pytest.param(None, 1.0, id="no-data-no-override"),
    ],
)
def test_sentiment_override(index, multiplier) -> None:
    o = SentimentOverride(Fixed("fng", index), greed_above=90, greed_multiplier=0.5,
                          fear_below=10, fear_multiplier=0.0)
    assert o.multiplier(T0 + 1)[0] == multiplier


def _drive(strategy, closes: list[float]) -> list:
    buf, out = CandleBuffer("BTC/USDT", "1d", 64), []
    for i, c in enumerate(closes):
        candle = Candle("binance", "BTC/USDT", "1d", T0 + i * D, c, c, c, c, 1.0)
        buf.append(candle)
        if len(buf) >= strategy.warmup:
            out.append(strategy.evaluate(BarContext(candle, buf.window(strategy.warmup), 0.0)))
    return out


def test_confirmed_strategy_gates_entries_and_scales_size(tmp_path: Path) -> None:
    days = [T0 + i * D for i in range(12)]
    whales = write(tmp_path / "w.csv", [(t, i) for i, t in enumerate(days)])  # always rising
    reserves = write(tmp_path / "r.csv", [(t, 100 - i if i < 8 else 300 - i) for i, t in enumerate(days)])
    fng = write(tmp_path / "f.csv", [(t, 95 if i >= 10 else 50) for i, t in enumerate(days)])
    params = {
        "inner": {"kind": "ma_crossover", "params": {"fast": 2, "slow": 3, "size_pct": 8.0}},
        "sources": [
            {"name": "whales", "path": str(whales), "test": "rising", "lookback": "1d"},
            {"name": "reserves", "path": str(reserves), "test": "falling", "lookback": "1d"},
        ],
        "min_aligned": 2,
        "sentiment": {"name": "fng", "path": str(fng), "greed_above": 90, "greed_multiplier": 0.5},
    }
    s = build_strategy("confirmed", "c", ("BTC/USDT",), "1d", params)
    sigs = _drive(s, list(np.linspace(100, 120, 12)))  # a steady uptrend: the MA says long
    assert all(x.direction is Direction.LONG for x in sigs)
    sizes = [x.size_pct for x in sigs]  # signals of days 2..11, stamped at each day's close
    assert sizes[:5] == [8.0] * 5  # both confirmations align
    assert sizes[5] == 0.0 and "not acted" in sigs[5].reason  # reserves jump at day 8 close
    assert sigs[5].votes == {"confirm:whales": "yes", "confirm:reserves": "no"}
    assert sizes[6:] == [8.0, 4.0, 4.0, 0.0]  # greed > 90 from day 10 -> x0.5
    # day 12: the whale series ended at day 11, so it is no longer "rising": not confirmed


@pytest.mark.parametrize(
    ("text", "ms"),
    [pytest.param("12h", 43_200_000, id="hours"), pytest.param("2d", 2 * D, id="days"),
     pytest.param("1w", 7 * D, id="week"), pytest.param(5, 5, id="ms")],
)
def test_parse_duration(text, ms) -> None:
    assert parse_duration(text) == ms
