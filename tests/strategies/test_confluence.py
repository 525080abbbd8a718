"""Multi-timeframe confluence: members on exact aggregated candles; trade only when aligned."""

from __future__ import annotations

import dataclasses
import functools
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from bot.core.aggregate import aggregate_arrays
from bot.core.buffer import CandleBuffer
from bot.marketdata.candle_csv import arrays_to_candles
from bot.core.events import Candle, Direction, Signal
from strategies.base import BarContext, Strategy
from strategies.catalog import StrategyParamError, build_strategy
from strategies.confluence import Confluence, Member
from strategies.models.spec import ModelSpec
from tests.strategies.test_helpers import SYMBOL, history, train_into

H = 3_600_000


def drive(strategy: Strategy, candles: list[Candle]) -> list[Signal]:
    buf, out, position = CandleBuffer(SYMBOL, "1h", 8), [], 0.0
    for c in candles:
        buf.append(c)
        sig = strategy.evaluate(BarContext(c, buf.window(2), position))
        if sig is not None:  # explained after acting, as the Engine does
            sig = dataclasses.replace(sig, attributions=strategy.explain(sig))
            out.append(sig)
            if sig.direction is Direction.LONG and sig.size_pct > 0:
                position = 1.0
            elif sig.direction is Direction.FLAT:
                position = 0.0
    return out


class Recorder(Strategy):
    """Records the candles a member is shown; says long on up bars."""

    def __init__(self, timeframe: str) -> None:
        super().__init__("rec", (SYMBOL,), timeframe)
        self.seen: list[Candle] = []

    def evaluate(self, ctx: BarContext) -> Signal | None:
        self.seen.append(ctx.candle)
        up = ctx.candle.close > ctx.candle.open
        return self.signal(ctx, Direction.LONG if up else Direction.FLAT, 80.0, size_pct=5.0)


def test_members_see_exactly_the_aggregated_candles() -> None:
    arrays = history("2020-03-01", "2020-06-01").arrays  # includes a gap in the hourly data
    c = build_strategy("confluence", "c", (SYMBOL,), "1h", {"members": [
        {"timeframe": "4h", "kind": "buy_and_hold"}, {"timeframe": "1d", "kind": "buy_and_hold"},
        {"timeframe": "1w", "kind": "buy_and_hold"}]})
    assert isinstance(c, Confluence)
    recorders = {m.timeframe: Recorder(m.timeframe) for m in c.members}
    c.members[:] = [Member(m.label, m.timeframe, recorders[m.timeframe]) for m in c.members]
    sigs = drive(c, arrays_to_candles(arrays, "binance", SYMBOL, "1h"))
    for tf, rec in recorders.items():
        batch = aggregate_arrays(arrays, "1h", tf)
        assert [x.ts for x in rec.seen] == batch["ts"].tolist(), tf
        assert [x.close for x in rec.seen] == batch["close"].tolist(), tf
        assert [x.volume for x in rec.seen] == batch["volume"].tolist(), tf
    # A combined signal only on bars where a member got a new candle, once all have spoken.
    first_week_close = recorders["1w"].seen[0].close_ts
    assert sigs and sigs[0].ts == first_week_close
    assert all(s.ts % (4 * H) == 0 for s in sigs)
    assert {s.horizon for s in sigs} == {"4h"}


class Fixed(Strategy):
    def __init__(self, direction: Direction, size: float = 5.0, strength: float = 80.0) -> None:
        super().__init__("fixed", (SYMBOL,), "1h")
        self.direction, self.size, self.strength = direction, size, strength

    def evaluate(self, ctx: BarContext) -> Signal | None:
        return self.signal(ctx, self.direction, self.strength, size_pct=self.size)


L, F = Direction.LONG, Direction.FLAT


@pytest.mark.parametrize(
    ("dirs", "require", "exit_when", "position", "expected", "size"),
    [
        pytest.param((L, L, L), "all", "lost", 0.0, L, 2.0, id="all-long-enters-smallest-size"),
        pytest.param((L, L, F), "all", "lost", 1.0, F, 0.0, id="one-flat-breaks-confluence-exit"),
        pytest.param((L, L, F), "all", "all_flat", 1.0, L, 0.0, id="all-flat-rule-holds"),
        pytest.param((L, L, F), "all", "all_flat", 0.0, F, 0.0, id="all-flat-rule-stays-out"),
        pytest.param((F, F, F), "all", "all_flat", 1.0, F, 0.0, id="all-flat-exits"),
        pytest.param((L, L, F), 2, "lost", 0.0, L, 2.0, id="two-of-three-enters"),
        pytest.param((L, F, F), 2, "lost", 0.0, F, 0.0, id="one-of-three-flat"),
    ],
)
def test_confluence_truth_table(dirs, require, exit_when, position, expected, size) -> None:
    c = build_strategy("confluence", "c", (SYMBOL,), "1h", {
        "require": require, "exit_when": exit_when,
        "members": [{"timeframe": "1h", "kind": "buy_and_hold", "name": f"m{i}"} for i in range(3)]})
    sizes = (2.0, 5.0, 9.0)
    c.members[:] = [Member(m.label, m.timeframe, Fixed(d, s)) for m, d, s in zip(c.members, dirs, sizes)]
    candle = Candle("binance", SYMBOL, "1h", 0, 1, 1, 1, 1, 1)
    buf = CandleBuffer(SYMBOL, "1h", 4)
    buf.append(candle)
    sig = c.evaluate(BarContext(candle, buf.window(2), position))
    assert sig is not None and sig.direction is expected
    assert sig.size_pct == size
    assert sig.votes == {f"1h:m{i}": d.value for i, d in enumerate(dirs)}


@pytest.mark.parametrize(
    ("params", "key"),
    [
        pytest.param({"members": []}, "at least one", id="no-members"),
        pytest.param({"members": [{"timeframe": "30m", "kind": "buy_and_hold"}]}, "multiple", id="finer-than-base"),
        pytest.param({"members": [{"timeframe": "1d", "kind": "buy_and_hold"}], "require": 2}, "require", id="require-too-big"),
        pytest.param({"members": [{"timeframe": "1d", "kind": "ma_crossover", "params": {"fast": 9, "slow": 3}}]},
                     "fast < slow", id="member-params-checked"),
        pytest.param({"members": [{"timeframe": "1d", "kind": "buy_and_hold"}] * 2}, "unique", id="duplicate-labels"),
    ],
)
def test_bad_confluence_params(params, key) -> None:
    with pytest.raises(StrategyParamError, match=key):
        build_strategy("confluence", "c", (SYMBOL,), "1h", params)


_DAILY = dict(window=16, epochs=2, batch_size=64, stride=1, patience=1, dropout=0.0)
DAILY_SPECS = (
    ModelSpec(name="lstm", kind="lstm", hidden=(8,), dense=(), **_DAILY),
    ModelSpec(name="gbm", kind="gbm", gbm_max_iter=20, window=16, gbm_lags=(0, 1), class_balance=False),
)


@functools.cache
def daily_models_dir() -> Path:
    """Tiny models trained on the exchange's own 1D candles (2017-08 .. 2020-06)."""
    root = Path(tempfile.mkdtemp(prefix="neuralbot-daily-"))
    import atexit

    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return train_into(root / "models", DAILY_SPECS, "1d", "2017-08-01", "2020-06-01")


def test_neural_member_on_daily_candles_aggregated_from_hours() -> None:
    models = daily_models_dir()
    c = build_strategy("confluence", "c", (SYMBOL,), "1h", {"require": 1, "members": [
        {"timeframe": "1d", "kind": "neural",
         "params": {"models_dir": str(models), "models": ["lstm", "gbm"], "vote_k": 2,
                    "threshold": 0.5, "act_strength": 50.0, "saturation": 0.55, "explain": "all"}}]})
    arrays = history("2020-06-01", "2021-01-01").arrays
    sigs = drive(c, arrays_to_candles(arrays, "binance", SYMBOL, "1h"))
    # 1D features need 169 daily bars (ret_168): signals start about six months in.
    assert len(sigs) > 20
    assert all(s.ts % 86_400_000 == 0 for s in sigs)
    assert all(set(s.votes) == {"1d:neural"} for s in sigs)
    assert {s.horizon for s in sigs} == {"1d"}
    assert np.isfinite([s.probability for s in sigs]).all()
    # explanations: the daily member's attributions, asked for through the confluence
    assert all(0 < len(s.attributions) <= 5 for s in sigs)
