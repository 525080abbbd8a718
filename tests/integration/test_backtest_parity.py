"""Fast path (batch predictions replayed) == streaming path (predict bar by bar), through the Engine:
the neural ensemble on a precomputed-table predictor and on a live one gives the same signals."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bot.config.settings import Settings
from bot.marketdata.candle_csv import arrays_to_candles
from bot.evaluation.backtest import (
    SIGNAL_RISK,
    ProbabilityStrategy,
    run_strategy,
    with_costs,
)
from bot.evaluation.walkforward import Fold
from strategies.features.compute import DEFAULT_SPEC, compute_features
from strategies.features.history import load_history
from strategies.models.spec import ModelSpec
from strategies.training.targets import TargetSpec, compute_target
from strategies.features.windows import Windows, valid_ends
from tests.conftest import DATA_DIR

SYMBOL, TF = "BTC/USDT", "1h"


@pytest.fixture(scope="module")
def fitted():
    """A tiny GBM and a tiny LSTM fitted on the first part of a real 1-month slice."""
    h = load_history(DATA_DIR, SYMBOL, TF, "2019-01-01", "2019-02-01")
    feats = compute_features(h.arrays, DEFAULT_SPEC)
    y = compute_target(h.arrays["close"], TargetSpec("direction", 1))
    ends = valid_ends(feats, y, 24)
    fold = Fold(0, ends[:450], ends[452:600], ends[601:], 0, 0)
    models = {}
    for spec in (ModelSpec(name="gbm", kind="gbm", preset="gbm", window=24, gbm_max_iter=10,
                           gbm_lags=(0, 1, 3)),
                 ModelSpec(name="lstm", kind="lstm", preset="small", window=24, epochs=1, hidden=(8,),
                           dense=(8,), max_train_windows=300)):
        from strategies.models.zoo import build_model
        from strategies.features.windows import Normalizer

        lo, hi = int(fold.train[0]), int(fold.train[-1])
        model = build_model(spec, feats.shape[1], Normalizer.fit(feats[lo - spec.window + 1 : hi + 1]))
        def mk(r: np.ndarray, w: int = spec.window) -> Windows:
            return Windows(feats, r, y[r].astype(np.float32), w, h.arrays["ts"][r])

        model.fit(mk(fold.train), mk(fold.val))
        model.calibrate(mk(fold.val))
        models[spec.name] = model
    return h, models


def _run(settings: Settings, strategy, candles):
    return asyncio.run(run_strategy(settings, strategy, candles, limits=SIGNAL_RISK, size_pct=100.0))


def _signals(rec):
    return [(s.ts, s.direction, s.strength, s.size_pct, s.probability, tuple(sorted(s.votes.items())))
            for s in rec.signals]


def _fills(rec):
    return [(f["ts"], f["side"], f["amount"], f["price"]) for f in rec.fills]


def test_table_and_live_predictors_agree_bar_by_bar(fitted) -> None:
    """The two predictors of one holder, over the same real candles: the same bars predicted,
    the same P(up) per model, the same volatility and the same feature windows."""
    from strategies.predictor import LivePredictor, ModelHolder, TablePredictor, predict_table

    h, models = fitted
    holder = ModelHolder("ens", SYMBOL, TF, models)
    vol_bars = 168
    table = TablePredictor(holder, predict_table(holder, DEFAULT_SPEC, h, vol_bars))
    live = LivePredictor(holder, DEFAULT_SPEC, vol_bars)
    predicted = 0
    for c in arrays_to_candles(h.arrays, "binance", SYMBOL, TF):
        a, b = table.predict(c), live.predict(c)
        assert (a is None) == (b is None), c.ts
        if a is None or b is None:
            continue
        predicted += 1
        assert a.probs.keys() == b.probs.keys()
        for name in a.probs:
            assert a.probs[name] == pytest.approx(b.probs[name], rel=1e-5, abs=1e-6), (c.ts, name)
        assert (np.isnan(a.vol) and np.isnan(b.vol)) or a.vol == pytest.approx(b.vol, rel=1e-9), c.ts
        np.testing.assert_allclose(a.window(24), b.window(24), rtol=1e-6, atol=1e-9)
    assert predicted > 400, "the slice must be predicted on most bars"


def test_neural_ensemble_fast_path_matches_streaming(fitted) -> None:
    from strategies.holders import neural_ensemble

    h, models = fitted
    settings = with_costs(Settings(), 2.0, signal_risk=True)
    candles = arrays_to_candles(h.arrays, "binance", SYMBOL, TF)
    kw = {"models": models, "vote_k": 1, "threshold": 0.5, "act_strength": 0.0, "explain": "none"}
    fast = neural_ensemble("ens", (SYMBOL,), TF, **kw)
    fast.precompute(SYMBOL, h)  # a TablePredictor
    slow = neural_ensemble("ens", (SYMBOL,), TF, **kw)  # its LivePredictor
    a, b = _run(settings, fast, candles), _run(settings, slow, candles)
    assert fast.book(SYMBOL).table is not None and slow.book(SYMBOL).table is None  # each kept its own
    assert slow.book(SYMBOL).live.buffer.ready and not fast.book(SYMBOL).live.buffer.ready
    assert len(a.signals) > 50 and len(a.fills) >= 2, "the slice must exercise trading"
    sa, sb = _signals(a), _signals(b)
    assert [s[:2] for s in sa] == [s[:2] for s in sb]
    for x, z in zip(sa, sb, strict=True):
        assert x[2:5] == pytest.approx(z[2:5], rel=1e-9, abs=1e-9)
        assert x[5] == z[5]
    assert [f[:2] for f in _fills(a)] == [f[:2] for f in _fills(b)]
    for x, z in zip(_fills(a), _fills(b), strict=True):
        assert x[2:] == pytest.approx(z[2:], rel=1e-9)
    np.testing.assert_allclose(a.equity, b.equity, rtol=1e-12)


def test_walkforward_forecasts_match_bar_by_bar_predictions(fitted) -> None:
    """The batch forecasts the walk-forward replays equal per-bar live predictions."""
    from strategies.features.buffer import FeatureBuffer

    h, models = fitted
    model = models["lstm"]
    feats = compute_features(h.arrays, DEFAULT_SPEC)
    ends = valid_ends(feats, None, model.window)
    batch = model.predict_windows(Windows(feats, ends, np.full(len(ends), np.nan, np.float32), model.window))
    buf = FeatureBuffer(SYMBOL, TF, DEFAULT_SPEC, n_steps=model.window)
    live = {}
    for c in arrays_to_candles(h.arrays, "binance", SYMBOL, TF):
        buf.on_candle(c)
        x = buf.latest_window(model.window)
        if x is not None:
            live[c.ts] = float(model.predict(x)[0])
    ts = h.arrays["ts"][ends]
    assert set(live) == set(ts.tolist())
    np.testing.assert_allclose(batch, [live[t] for t in ts.tolist()], rtol=1e-5, atol=1e-6)
    # ... and replaying either through the Engine gives the same trades
    settings = with_costs(Settings(), 2.0, signal_risk=True)
    candles = arrays_to_candles(h.arrays, "binance", SYMBOL, TF)
    a = _run(settings, ProbabilityStrategy.from_arrays("m", SYMBOL, TF, ts, batch), candles)
    b = _run(settings, ProbabilityStrategy.from_arrays("m", SYMBOL, TF, ts, np.array([live[t] for t in ts.tolist()])),
             candles)
    assert [s.direction for s in a.signals] == [s.direction for s in b.signals]
    assert [f[:2] for f in _fills(a)] == [f[:2] for f in _fills(b)]


class StreamingFeed:
    """The same candles as a feed that is not a ReplayFeed: the ensemble predicts bar by bar."""

    def __init__(self, candles: list) -> None:
        self.candles = candles

    async def __aiter__(self):
        for c in self.candles:
            yield c

    async def close(self) -> None:
        pass

    def reconnects_by_stream(self) -> dict[str, int]:
        return {}


def _stored(path):
    import sqlite3

    with sqlite3.connect(path) as db:
        q = lambda sql: db.execute(sql).fetchall()  # noqa: E731
        return {
            "signals": q("SELECT ts, direction, strength, probability, confidence_low, confidence_high,"
                         " size_pct, risk_level, votes_json, reason FROM signals ORDER BY ts"),
            "attributions": q("SELECT ts, attributions_json FROM signals ORDER BY ts"),
            "fills": q("SELECT ts, side, amount, price, fee FROM fills ORDER BY ts, side"),
            "equity": q("SELECT ts, cash, equity, exposure, heat FROM equity ORDER BY ts"),
        }


def test_cli_backtest_takes_the_fast_path_with_streaming_results(fitted, tmp_path, data_dir) -> None:
    """``neuralbot backtest`` of a neural config precomputes (its finite replay is shown to the
    ensemble first) and explains after the replay, yet stores what bar-by-bar evaluation stores."""
    import json

    from bot.kernel.compose import run_backtest
    from bot.cli.parser import main
    from bot.config.load import load_settings
    from bot.marketdata.candle_csv import candle_file, load_candles_csv
    from strategies.neural import NeuralEnsemble
    from strategies.models.registry import model_dir, save_model

    h, models = fitted
    for name, m in models.items():
        save_model(m, model_dir(tmp_path / "models", SYMBOL, TF, name), DEFAULT_SPEC)

    def config(name: str):
        path = tmp_path / f"{name}.toml"
        path.write_text(
            f'[data]\ndir = "{data_dir}"\n[store]\npath = "{tmp_path / name}.sqlite"\n'
            f'[backtest]\nsymbols = ["{SYMBOL}"]\ntimeframe = "{TF}"\n'
            'start = "2019-01-01"\nend = "2019-02-01"\n[risk]\nmin_strength = 0.0\n'
            '[[strategies]]\nname = "ens"\nkind = "neural"\n'
            f'params = {{ models = ["gbm", "lstm"], models_dir = "{tmp_path / "models"}", vote_k = 1,'
            ' threshold = 0.5, act_strength = 0.0, ig_steps = 8 }\n')
        return path

    precomputed = []
    original = NeuralEnsemble.precompute

    def spy(self, symbol, history, *a, **kw):
        precomputed.append(len(history))
        return original(self, symbol, history, *a, **kw)

    NeuralEnsemble.precompute = spy
    try:
        assert main(["backtest", "--config", str(config("fast"))]) == 0
        settings = load_settings(config("slow"))
        candles = load_candles_csv(candle_file(data_dir, "binance", SYMBOL, TF), "binance", SYMBOL, TF,
                                   1546300800000, 1548979200000)
        asyncio.run(run_backtest(settings, feed=StreamingFeed(candles)))
    finally:
        NeuralEnsemble.precompute = original
    assert precomputed == [len(candles)]  # the CLI run precomputed, the streaming one did not
    fast, slow = _stored(tmp_path / "fast.sqlite"), _stored(tmp_path / "slow.sqlite")
    assert len(fast["fills"]) >= 4 and len(fast["signals"]) > 50, "the slice must exercise trading"
    for table in ("signals", "fills", "equity"):
        assert len(fast[table]) == len(slow[table])
        for a, b in zip(fast[table], slow[table], strict=True):
            assert [x for x in a if isinstance(x, str)] == [y for y in b if isinstance(y, str)], table
            nums = lambda row: [x for x in row if not isinstance(x, str)]  # noqa: E731
            assert nums(a) == pytest.approx(nums(b), rel=1e-9, abs=1e-12), table
    explained = [(json.loads(a or "{}"), json.loads(b or "{}"))
                 for (_, a), (_, b) in zip(fast["attributions"], slow["attributions"], strict=True)]
    acted = [(a, b) for a, b in explained if b]
    assert len(acted) >= 4  # acted signals are explained, after the replay as bar by bar
    for a, b in explained:
        assert a.keys() == b.keys() and list(a.values()) == pytest.approx(list(b.values()), abs=2e-4)
