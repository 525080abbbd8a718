"""Walk-forward replays every configured model strategy as configured: a ``neural`` strategy without a
decision table votes with its own parameters exactly as the live strategy would on the same forecasts;
log-loss weights come from each fold's validation span; nested model members are refused."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from bot.config.settings import Settings
from bot.marketdata.candle_csv import arrays_to_candles
from bot.evaluation.backtest import SIGNAL_RISK, run_strategy, with_costs
from bot.evaluation.vote import VoteStrategy, fold_weights
from bot.evaluation.walkforward import Forecasts
from strategies.ensemble import log_loss_weights, voting_setup
from strategies.features.compute import DEFAULT_SPEC, compute_features
from strategies.training.labels import trailing_vol
from strategies.training.classification import log_loss
from strategies.neural import NeuralEnsemble
from strategies.predictor import ModelHolder
from strategies.features.windows import Windows, valid_ends
from tests.integration.test_backtest_parity import SYMBOL, TF, fitted  # noqa: F401  (the fixture)

VOTING = {"vote_k": 1, "threshold": 0.5, "act_strength": 55.0, "saturation": 0.6, "min_size_pct": 5.0,
          "max_size_pct": 60.0, "exit_rule": "no_long", "risk_low_below": 0.3, "risk_high_above": 0.6,
          "risk_multipliers": {"low": 1.0, "medium": 0.5, "high": 0.25}}


def _signals(rec):
    return [(s.ts, s.direction, round(s.strength, 4), round(s.size_pct, 4), s.risk_level) for s in rec.signals]


def test_a_configured_vote_replays_as_the_live_strategy_votes(fitted) -> None:  # noqa: F811
    h, models = fitted
    feats = compute_features(h.arrays, DEFAULT_SPEC)
    ts = h.arrays["ts"]
    probs = {}
    for name, m in models.items():
        ends = valid_ends(feats, None, m.window)
        p = np.full(len(ts), np.nan)
        p[ends] = m.predict_windows(Windows(feats, ends, np.full(len(ends), np.nan, np.float32), m.window))
        probs[name] = p
    ok = np.all([np.isfinite(p) for p in probs.values()], axis=0)
    vol = trailing_vol(h.arrays["close"], 168)
    replay = VoteStrategy("vote", SYMBOL, TF, ts[ok], {n: p[ok] for n, p in probs.items()},
                          voting_setup(len(models), **VOTING), vol[ok])
    live = NeuralEnsemble("vote", (SYMBOL,), TF, {SYMBOL: ModelHolder("vote", SYMBOL, TF, models)},
                          explain="none", vol_days=7.0, **VOTING)
    settings = with_costs(Settings(), 2.0, signal_risk=True)
    candles = arrays_to_candles(h.arrays, "binance", SYMBOL, TF)
    a = asyncio.run(run_strategy(settings, replay, candles, limits=SIGNAL_RISK))
    b = asyncio.run(run_strategy(settings, live, candles, limits=SIGNAL_RISK))
    sa, sb = _signals(a), _signals(b)
    assert len(sa) > 100 and len(a.fills) >= 2, "the slice must exercise trading"
    assert {s[4] for s in sa} >= {"low", "medium"}, "the volatility risk level must take part"
    assert sa == sb
    np.testing.assert_allclose(a.equity, b.equity, rtol=1e-7)  # the live signal rounds its size to 1e-4 %


def test_log_loss_weights_are_taken_per_fold_from_validation_only() -> None:
    y = np.array([1, 0, 1, 0, 1, 0, 1, 0], dtype=float)
    fold = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    good = np.where(y == 1, 0.7, 0.3)
    val = {"a": Forecasts("a", np.arange(8), good, y, fold),
           "b": Forecasts("b", np.arange(8), np.r_[np.full(4, 0.5), good[4:] * 0 + 0.6], y, fold)}
    w = fold_weights(val, "log_loss")
    assert w[0] == log_loss_weights({"a": log_loss(y[:4], good[:4]), "b": log_loss(y[:4], np.full(4, 0.5))})
    assert w[0]["a"] == pytest.approx(1.0) and w[1]["a"] > w[1]["b"] == pytest.approx(0.0)
    assert fold_weights(val, "equal") == {}


def test_walkforward_refuses_a_nested_model_member(write_config, capsys: pytest.CaptureFixture[str]) -> None:
    from bot.cli.parser import main

    config = write_config(
        '[[strategies]]\nname = "conf"\nkind = "confluence"\n[strategies.params]\nrequire = 1\n'
        'members = [{ timeframe = "4h", kind = "rsi_macd" },'
        ' { timeframe = "1d", kind = "neural", params = { models = ["lstm"] } }]\n')
    assert main(["walkforward", "--config", str(config), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'conf'" in err and "neural" in err and "enabled = false" in err and "\n" not in err


SHORT = ("[backtest]\nstart = 2019-01-01\nend = 2019-04-01\n"
         '[walkforward]\nmin_train_days = 45\nretrain_every = "15d"\ncache_dir = ""\n'
         '[[models]]\nname = "g"\nkind = "gbm"\nwindow = 8\ngbm_max_iter = 3\ngbm_lags = [0]\n'
         '[[models]]\nname = "h"\nkind = "gbm"\nwindow = 8\ngbm_max_iter = 3\ngbm_lags = [0, 1]\nseed = 1\n')


def _walkforward(write_config, strategies: str, *extra: str) -> int:
    """``neuralbot walkforward`` on three months of real BTC with two tiny boosted models g and h."""
    from bot.cli.parser import main

    return main(["walkforward", "--config", str(write_config(SHORT + strategies)), "--no-progress", *extra])


def test_a_strategy_reading_other_features_than_its_models_is_a_config_error(
    write_config, capsys: pytest.CaptureFixture[str],
) -> None:
    strategy = '[[strategies]]\nname = "vote"\nkind = "neural"\nparams = { models = ["g"], features = "mtf" }\n'
    assert _walkforward(write_config, strategy) == 2
    err = capsys.readouterr().err.strip()
    assert "'vote'" in err and "'mtf'" in err and "'default'" in err


def test_walkforward_scores_a_configured_vote_under_its_own_name(
    write_config, capsys: pytest.CaptureFixture[str],
) -> None:
    """It used to be left out (only decision-layer and meta-labeled strategies were replayed)."""
    import json

    strategies = ('[[strategies]]\nname = "never"\nkind = "neural"\n'
                  'params = { models = ["g", "h"], vote_k = 2, threshold = 0.99 }\n'
                  '[[strategies]]\nname = "eager"\nkind = "neural"\n'
                  'params = { models = ["g", "h"], vote_k = 1, threshold = 0.5, act_strength = 50.0,'
                  ' max_size_pct = 50.0 }\n')
    assert _walkforward(write_config, strategies, "--json") == 0
    scores = json.loads(capsys.readouterr().out)["BTC/USDT 1h"]
    assert scores["never"]["trades"] == 0 < scores["eager"]["trades"]
    assert 0 < scores["eager"]["avg_exposure"] <= 0.5 + 1e-6  # its own size, not the forecasts' 100%
