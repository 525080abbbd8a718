"""Retraining in the daemon: the accuracy trigger fed the daemon's way, candidates fitted on all
but the held-out bars, every traded series retrained, expired losers kept out of new entries."""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from bot.core.clock import SimClock
from bot.config.load import load_settings
from bot.app.daemon import Daemon
from bot.marketdata.candle_csv import candle_file, load_candles_csv
from bot.core.events import Direction, Signal
from bot.feeds.replay import ReplayFeed
from bot.kernel.kernel import Kernel
from bot.config.ops import RetrainConfig
from bot.ops.retrain import Retrainer
from bot.ops.retrain_job import Verdict, fit_candidate
from bot.store.store import Store
from strategies.base import BarContext, Strategy
from strategies.models.calibration import TemperatureScaler
from strategies.features.compute import DEFAULT_SPEC, get_spec
from strategies.features.history import load_history
from strategies.models.spec import ModelSpec
from strategies.holders import neural_ensemble
from strategies.models.zoo import build_model
from strategies.predictor import ModelHolder
from strategies.models.registry import model_dir, save_model
from strategies.training.targets import TargetSpec, compute_target
from strategies.training.pipeline import Dataset
from strategies.features.windows import Normalizer, valid_ends

SPEC = ModelSpec(name="lstm", kind="lstm", window=12, hidden=(8,), dense=(8,), epochs=1, batch_size=256)
H = 3_600_000


def btc_bars(data_dir: Path, n: int, since: int = 1_609_459_200_000, symbol: str = "BTC/USDT") -> list[Any]:
    path = candle_file(data_dir, "binance", symbol, "1h")
    return load_candles_csv(path, "binance", symbol, "1h", since, None)[:n]


class Oracle(Strategy):
    """Direction calls with P(up) that are right until ``wrong_from`` and wrong after (it knows the
    next close); it predicts with a (model-less) holder of that series, which makes the retrainer
    track its calls as it does a neural ensemble's."""

    def __init__(self, candles: list[Any], wrong_from: int) -> None:
        super().__init__("oracle", ("BTC/USDT",), "1h")
        self.next_close = {a.ts: b.close for a, b in zip(candles, candles[1:], strict=False)}
        self.wrong_from = wrong_from
        self.holder = ModelHolder("oracle", "BTC/USDT", "1h", {})

    def evaluate(self, ctx: BarContext) -> Signal | None:
        nxt = self.next_close.get(ctx.candle.ts)
        if nxt is None:
            return None
        up, right = nxt > ctx.candle.close, ctx.candle.ts < self.wrong_from
        return self.signal(ctx, Direction.FLAT, 50.0, probability=0.7 if up == right else 0.3)

    def model_holders(self) -> list[ModelHolder]:
        return [self.holder]


async def test_accuracy_drop_fires_from_the_daemon_loop(data_dir: Path, tmp_path: Path,
                                                        write_config: Any) -> None:
    """The daemon's own loop (engine first, then the candle) feeds the tracker: a real drop fires."""
    candles = btc_bars(data_dir, 600)
    models = tmp_path / "models"
    save_model(build_model(SPEC, DEFAULT_SPEC.n_features), model_dir(models, "BTC/USDT", "1h", "lstm"),
               DEFAULT_SPEC)  # created now: not expired
    settings = load_settings(write_config(f'[retrain]\nenabled = true\nmodels_dir = "{models}"\n'
                                          "accuracy_window = 100\nscheduled = false\n"))
    strategy = Oracle(candles, wrong_from=candles[300].ts)
    store = await Store.open(tmp_path / "bot.sqlite", portfolio="t")
    try:
        engine = Kernel(settings, "backtest").simulated_engine([strategy], store, SimClock())
        daemon = Daemon(settings, "t")
        daemon.engine, daemon.store = engine, store
        daemon.retrainer = Retrainer(settings.retrain, settings, holders=strategy.model_holders())
        daemon._instrument(engine)
        await daemon._consume(engine, ReplayFeed([candles[:290]]))
        assert daemon.retrainer.due() is None  # right so far: no trigger
        await daemon._consume(engine, ReplayFeed([candles[290:]]))
        reason = daemon.retrainer.due()
        assert reason is not None and reason.startswith("accuracy drop"), reason
    finally:
        await store.close()


def test_candidate_fits_on_every_bar_but_the_held_out_ones(data_dir: Path) -> None:
    """The candidate learns from the most recent bars it is given (not a 70/15/15 split that
    leaves the last 30% out): its normaliser spans all but the early-stopping tail."""
    hist = load_history(data_dir, "BTC/USDT", "1h", "2020-11-01", "2021-01-01")
    ds = Dataset.build(hist, get_spec("default"))
    torch.manual_seed(0)
    model = fit_candidate(SPEC, ds)
    y = compute_target(hist.arrays["close"], TargetSpec("direction", SPEC.horizon))
    ends = valid_ends(ds.features, y, SPEC.window)
    lo = int(ends[0]) - SPEC.window + 1
    fitted = [hi for hi in ends if np.allclose(Normalizer.fit(ds.features[lo : hi + 1]).mean,
                                               model.normalizer.mean)]
    assert fitted, "normaliser matches no prefix of the history"
    share = (fitted[0] - ends[0]) / (ends[-1] - ends[0])
    assert share > 0.8, f"the candidate was fitted on the first {share:.0%} of its windows only"


def _registry_model(models: Path, symbol: str, seed: int, fitted_on: Any = None,
                    created_days_ago: float = 0.0) -> Path:
    """A registry model: fitted on ``fitted_on`` (a History), else random and absurdly sharp
    (any fitted candidate beats it)."""
    torch.manual_seed(seed)
    if fitted_on is not None:
        m = fit_candidate(SPEC, Dataset.build(fitted_on, DEFAULT_SPEC))
    else:
        m = build_model(SPEC, DEFAULT_SPEC.n_features)
        m.calibrator = TemperatureScaler(0.02)
    d = save_model(m, model_dir(models, symbol, "1h", "lstm"), DEFAULT_SPEC)
    if created_days_ago:
        meta = json.loads((d / "meta.json").read_text())
        meta["created_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - created_days_ago * 86400))
        (d / "meta.json").write_text(json.dumps(meta))
    return d


def _settings(data_dir: Path, tmp: Path) -> Any:
    return SimpleNamespace(data=SimpleNamespace(dir=data_dir), exchange=SimpleNamespace(name="binance"),
                           store=SimpleNamespace(path=tmp / "none.sqlite"),
                           walkforward=SimpleNamespace(val_fraction=0.15))


async def test_every_series_the_strategies_trade_is_retrained(data_dir: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    for i, sym in enumerate(("BTC/USDT", "ETH/USDT")):
        _registry_model(models, sym, i)
    ens = neural_ensemble("ens", ("BTC/USDT", "ETH/USDT"), "1h", models=["lstm"], models_dir=str(models),
                         explain="none")
    before = {s: ens.holder(s).models["lstm"] for s in ("BTC/USDT", "ETH/USDT")}
    cfg = RetrainConfig(enabled=True, models_dir=models, train_bars=600, eval_bars=100)
    r = Retrainer(cfg, _settings(data_dir, tmp_path), holders=ens.model_holders())
    await r.run_once("test")
    for sym, old in before.items():
        assert ens.holder(sym).models["lstm"] is not old, f"{sym} was not retrained"


def overconfident(spec: ModelSpec, ds: Dataset, val_fraction: float) -> Any:
    """A trainer whose candidates always lose the comparison."""
    model = fit_candidate(spec, ds, val_fraction)
    model.calibrator = TemperatureScaler(0.005)
    return model


async def test_an_expired_model_with_no_better_candidate_stops_opening_positions(
        data_dir: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    _registry_model(models, "BTC/USDT", 0, created_days_ago=40,
                    fitted_on=load_history(data_dir, "BTC/USDT", "1h", "2020-10-01", "2021-01-01"))
    ens = neural_ensemble("ens", ("BTC/USDT",), "1h", models=["lstm"], models_dir=str(models), vote_k=1,
                         threshold=0.5, act_strength=0.0, explain="none")
    cfg = RetrainConfig(enabled=True, models_dir=models, train_bars=600, eval_bars=100, max_model_age_days=30)
    r = Retrainer(cfg, _settings(data_dir, tmp_path), holders=ens.model_holders(), trainer="tests.ops.test_retrain_series:overconfident")
    assert (r.due() or "").startswith("expired")
    verdicts = await r.run_once(r.due() or "")
    assert verdicts and not any(v.better for v in verdicts), verdicts
    report = r.model_report()
    assert report["BTC/USDT@1h"]["lstm"]["expired"] is True
    assert report["BTC/USDT@1h"]["lstm"]["entries_blocked"] is True
    free = neural_ensemble("free", ("BTC/USDT",), "1h", models=["lstm"], models_dir=str(models), vote_k=1,
                          threshold=0.5, act_strength=0.0, explain="none")  # same model, not held
    longs, free_longs, exits = [], [], []
    for i, c in enumerate(btc_bars(data_dir, 300)):
        held = 1.0 if i % 2 else 0.0  # alternately flat (may enter) and holding (may exit)
        sig = ens.evaluate(BarContext(candle=c, window=None, position=held))  # type: ignore[arg-type]
        other = free.evaluate(BarContext(candle=c, window=None, position=held))  # type: ignore[arg-type]
        if not held and sig is not None and sig.direction is Direction.LONG:
            longs.append(sig)
        if not held and other is not None and other.direction is Direction.LONG:
            free_longs.append(other)
        if held and sig is not None and sig.direction is Direction.FLAT:
            exits.append(sig)
    assert any(s.size_pct > 0 for s in free_longs), "the model never opened: the test proves nothing"
    assert longs and all(s.size_pct == 0 for s in longs)
    assert "expired" in longs[0].reason and "entries held" in longs[0].reason
    assert exits, "exits must still come through"


async def test_a_fresh_model_lifts_the_hold(tmp_path: Path) -> None:
    models = tmp_path / "models"
    _registry_model(models, "BTC/USDT", 0, created_days_ago=40)
    ens = neural_ensemble("ens", ("BTC/USDT",), "1h", models=["lstm"], models_dir=str(models), explain="none")
    r = Retrainer(RetrainConfig(enabled=True, models_dir=models, max_model_age_days=30),
                  _settings(tmp_path, tmp_path), holders=ens.model_holders())
    st = r.series[("BTC/USDT", "1h")]
    r._hold_unreplaced(st, [Verdict("lstm", "brier", 0.25, 0.3, False)])
    assert r.model_report()["BTC/USDT@1h"]["lstm"]["entries_blocked"] and ens.holder("BTC/USDT").held
    fresh = save_model(build_model(SPEC, DEFAULT_SPEC.n_features), tmp_path / "candidate", DEFAULT_SPEC)
    await r._swap(st, Verdict("lstm", "brier", 0.25, 0.2, True, str(fresh)))
    r.refresh()
    assert not r.model_report()["BTC/USDT@1h"]["lstm"]["entries_blocked"] and ens.holder("BTC/USDT").held is None
