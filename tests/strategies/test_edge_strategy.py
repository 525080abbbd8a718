"""The neural strategy with the decision layer, on real BTC data with real (tiny) trained models."""

from __future__ import annotations

import numpy as np

from bot.core.buffer import CandleBuffer
from bot.marketdata.candle_csv import arrays_to_candles
from bot.core.events import Direction, Signal
from strategies.base import BarContext
from strategies.catalog import build_strategy
from strategies.neural import NeuralEnsemble
from tests.strategies.test_helpers import MODEL_NAMES, SYMBOL, history, tiny_models_dir

# the tiny models barely move off 0.5: a tiny cost so that the layer trades in two weeks
LOOSE_EDGE = {"cost": 0.0, "enter_margin": 0.0, "exit_edge": 0.0, "band": 0.0, "min_hold_bars": 3,
              "max_hold_bars": 8, "target_vol": 0.5}


def make(decision: dict[str, object]) -> NeuralEnsemble:
    params = dict(models=list(MODEL_NAMES), models_dir=str(tiny_models_dir()), decision=decision)
    return build_strategy("neural", "edge", (SYMBOL,), "1h", params)  # type: ignore[return-value]


def drive(strategy: NeuralEnsemble, arrays: dict[str, np.ndarray]) -> list[tuple[Signal, float]]:
    """Feed closed bars; the position follows the signals as the Engine would (long/flat)."""
    buf, out, position = CandleBuffer(SYMBOL, "1h", 16), [], 0.0
    for c in arrays_to_candles(arrays, "binance", SYMBOL, "1h"):
        buf.append(c)
        sig = strategy.evaluate(BarContext(c, buf.window(2), position))
        if sig is None:
            continue
        out.append((sig, position))
        if sig.direction is Direction.LONG and sig.size_pct > 0 and position == 0:
            position = 1.0
        elif sig.direction is Direction.FLAT:
            position = 0.0
    return out


def test_every_signal_says_why_and_holding_rules_hold() -> None:
    sigs = drive(make(LOOSE_EDGE), history("2020-10-01", "2020-10-15").arrays)
    assert len(sigs) > 100
    entries = [i for i, (s, pos) in enumerate(sigs) if pos == 0 and s.direction is Direction.LONG]
    exits = [i for i, (s, pos) in enumerate(sigs) if pos > 0 and s.direction is Direction.FLAT]
    assert entries and exits
    for s, _ in sigs:
        assert "edge" in s.reason and "cost" in s.reason
        assert s.votes == {}  # the layer sizes; the Engine's agreement scaling stays out
    for i in exits:  # held at least min_hold_bars, at most the time-out unless renewed
        entry = max(e for e in entries if e < i)
        assert i - entry >= 3
        assert i - entry <= 8 or any("renewed" in sigs[j][0].reason for j in range(entry, i))
    first = sigs[entries[0]][0]
    assert first.strength >= 75.0 and 0 < first.size_pct <= 100.0


def test_cost_keeps_it_flat_when_the_edge_is_smaller() -> None:
    sigs = drive(make({**LOOSE_EDGE, "cost": 0.05}), history("2020-10-01", "2020-10-15").arrays)
    assert sigs and all(s.direction is Direction.FLAT for s, _ in sigs)
    assert all("stay flat" in s.reason for s, _ in sigs)
