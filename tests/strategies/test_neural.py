"""The neural ensemble strategy on real BTC data with real (tiny) trained models."""

from __future__ import annotations

import dataclasses

import json
from pathlib import Path

import numpy as np
import pytest

from bot.core.buffer import CandleBuffer
from bot.core.clock import SimClock
from bot.config.settings import Settings
from bot.marketdata.candle_csv import arrays_to_candles
from bot.core.events import Direction, OrderSubmitted, Signal, SignalExplained
from bot.feeds.replay import ReplayFeed
from bot.kernel.kernel import Kernel
from bot.store.store import Store
from strategies.base import BarContext
from strategies.catalog import StrategyParamError, build_strategy
from strategies.training.labels import trailing_vol
from strategies.neural import NeuralEnsemble, horizon_label
from tests.strategies.test_helpers import MODEL_NAMES, SYMBOL, history, tiny_models_dir

# Loose enough that the tiny models (P(up) close to 0.5) trade in a two-week test window.
LOOSE = dict(vote_k=3, threshold=0.5, act_strength=50.0, saturation=0.55)


def make(**params) -> NeuralEnsemble:
    base = dict(models=list(MODEL_NAMES), models_dir=str(tiny_models_dir()), vol_model="vol")
    return build_strategy("neural", "ens", (SYMBOL,), "1h", {**base, **params})  # type: ignore[return-value]


def drive(strategy: NeuralEnsemble, arrays: dict[str, np.ndarray]) -> list[Signal]:
    buf, out = CandleBuffer(SYMBOL, "1h", 16), []
    for c in arrays_to_candles(arrays, "binance", SYMBOL, "1h"):
        buf.append(c)
        sig = strategy.evaluate(BarContext(c, buf.window(2), 0.0))
        if sig is not None:  # as the Engine does: explained after acting, stored with the signal
            out.append(dataclasses.replace(sig, attributions=strategy.explain(sig)))
    return out


@pytest.fixture(scope="module")
def window_arrays() -> dict[str, np.ndarray]:
    return history("2020-10-01", "2020-10-15").arrays  # after the models' training data


def test_fast_path_gives_the_same_signals_as_the_live_path(window_arrays) -> None:
    live = drive(make(**LOOSE), window_arrays)
    fast_strategy = make(**LOOSE)
    fast_strategy.precompute(SYMBOL, history("2020-10-01", "2020-10-15"))
    fast = drive(fast_strategy, window_arrays)
    assert len(live) == len(fast) > 100
    for a, b in zip(live, fast, strict=True):
        assert (a.ts, a.direction, a.size_pct, a.risk_level, a.votes) == (
            b.ts, b.direction, b.size_pct, b.risk_level, b.votes)
        assert a.probability == pytest.approx(b.probability, abs=1e-9)
        assert a.attributions.keys() == b.attributions.keys()


def test_signal_carries_the_whole_framework(window_arrays) -> None:
    sigs = drive(make(**LOOSE, explain="all", ci_method="bootstrap"), window_arrays)
    acted = [s for s in sigs if s.direction is Direction.LONG and s.size_pct > 0]
    assert acted, "the loose rule should enter at least once in two weeks"
    for s in sigs:
        assert 0.0 <= s.strength <= 100.0
        assert s.confidence_low <= s.probability <= s.confidence_high
        assert s.horizon == "1h" and s.risk_level in {"low", "medium", "high"}
        assert set(s.votes) == set(MODEL_NAMES) and set(s.votes.values()) <= {"long", "flat"}
        assert 0 < len(s.attributions) <= 5
        assert sum(abs(v) for v in s.attributions.values()) <= 1.0 + 1e-6
        assert s.size_pct == 0.0 or 1.0 <= s.size_pct <= 10.0
    # Signals are stored one per bar: the first comes once every model has a full window.
    first_ts = int(window_arrays["ts"][0])
    assert sigs[0].ts > first_ts + 168 * 3_600_000


def test_default_rule_is_strict(window_arrays) -> None:
    """4 of 5 at 0.55 and strength 65: the near-coin-flip tiny models never enter."""
    sigs = drive(make(), window_arrays)
    assert sigs and all(s.size_pct == 0.0 for s in sigs)
    assert all(not s.attributions for s in sigs)  # explain = "acted": nothing acted


def test_log_loss_weighting_reads_the_registry(window_arrays) -> None:
    s = make(weighting="log_loss")
    weights = s.book(SYMBOL).weights
    losses = {n: json.loads((tiny_models_dir() / "BTC_USDT_1h" / n / "meta.json").read_text())
              ["metrics"]["val"]["log_loss"] for n in MODEL_NAMES}
    best = min(losses, key=losses.get)
    assert sum(weights.values()) == pytest.approx(1.0)
    assert weights[best] == max(weights.values())


@pytest.mark.parametrize(
    ("params", "key"),
    [
        pytest.param({"models": ["nope"]}, "not found", id="missing-model"),
        pytest.param({"vote_k": 9}, "k <= n", id="k-above-n"),
        pytest.param({"explain": "sometimes"}, "explain", id="bad-explain"),
        pytest.param({"models": ["vol"]}, "regression", id="regressor-cannot-vote"),
        pytest.param({"features": "full"}, "feature spec", id="feature-spec-mismatch"),
    ],
)
def test_bad_params_are_reported(params, key) -> None:
    with pytest.raises(StrategyParamError, match=key):
        make(**params)


async def test_runs_through_the_engine_and_stores_signals(tmp_path: Path, data_dir: Path) -> None:
    settings = Settings(data={"dir": data_dir}, store={"path": tmp_path / "s.sqlite"},
                        risk={"min_strength": 50.0})
    strategy = make(**LOOSE)
    candles = arrays_to_candles(history("2020-10-01", "2020-10-15").arrays, "binance", SYMBOL, "1h")
    store = await Store.open(tmp_path / "s.sqlite", portfolio="t")
    try:
        engine = Kernel(settings, "backtest").simulated_engine([strategy], store, SimClock())
        seen: list[object] = []
        engine.subscribe(seen.append)
        stats = await engine.run(ReplayFeed([candles]))
        rows = await store.fetch("signals")
    finally:
        await store.close()
    assert stats.signals == len(rows) > 100
    assert stats.fills >= 1
    stored = [r for r in rows if r["attributions_json"] not in ("{}", None)]
    assert stored and all(len(json.loads(r["votes_json"])) == 5 for r in rows)
    # explanations never delay an order: each comes after its signal's order request
    explained = {e.signal_id: i for i, e in enumerate(seen) if isinstance(e, SignalExplained)}
    submitted = {e.intent_id.rsplit(":", 1)[0]: i for i, e in enumerate(seen) if isinstance(e, OrderSubmitted)}
    acted = explained.keys() & submitted.keys()
    assert acted and all(submitted[sid] < explained[sid] for sid in acted)
    assert {r["signal_id"] for r in stored} == explained.keys()


@pytest.mark.parametrize(
    ("bars", "tf", "label"),
    [pytest.param(1, "1h", "1h", id="1h"), pytest.param(4, "1h", "4h", id="4h"),
     pytest.param(24, "1h", "1d", id="1d"), pytest.param(168, "1h", "1w", id="1w"),
     pytest.param(6, "4h", "1d", id="6x4h")],
)
def test_horizon_label(bars, tf, label) -> None:
    assert horizon_label(bars, tf) == label


def test_trailing_vol_matches_definition() -> None:
    close = np.exp(np.cumsum(np.r_[0.0, np.tile([0.01, -0.01], 10)]))
    v = trailing_vol(close, 4)
    assert np.isnan(v[:4]).all() and v[4:] == pytest.approx(0.01)
