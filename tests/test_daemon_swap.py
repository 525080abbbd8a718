"""Hot swap: ``NeuralEnsemble.swap_model`` takes effect on the next bar; the retrainer uses it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from bot.config import RetrainConfig
from bot.data import candle_file, load_candles_csv
from bot.retrain import Retrainer
from bot.retrain_job import Verdict
from strategies.base import BarContext
from strategies.features import DEFAULT_SPEC
from strategies.model_config import ModelSpec
from strategies.models.zoo import build_model
from strategies.neural import NeuralEnsemble
from strategies.registry import model_dir, save_model

SPEC = ModelSpec(name="lstm", kind="lstm", preset="small")


def tiny(seed: int, spec: ModelSpec = SPEC) -> Any:
    torch.manual_seed(seed)
    m = build_model(spec, DEFAULT_SPEC.n_features)
    m.module.eval()
    return m


class Counting:
    """Wraps a model's ``predict`` to count calls (the model itself is real)."""

    def __init__(self, model: Any) -> None:
        self.calls = 0
        inner = model.predict

        def predict(x: np.ndarray) -> np.ndarray:
            self.calls += 1
            return inner(x)

        model.predict = predict


def bars(data_dir: Path, n: int) -> list[Any]:
    path = candle_file(data_dir, "binance", "BTC/USDT", "1h")
    return load_candles_csv(path, "binance", "BTC/USDT", "1h", 1_609_459_200_000, None)[:n]


def test_swap_model_takes_effect_on_the_next_bar(data_dir: Path) -> None:
    old, new, other = tiny(0), tiny(1), tiny(2)
    ens = NeuralEnsemble("ens", ("BTC/USDT",), "1h", models={"lstm": old, "lstm_b": other}, vote_k=1,
                         explain="none")
    calls_old, calls_new = Counting(old), Counting(new)
    candles = bars(data_dir, 420)
    for c in candles[:400]:
        ens.evaluate(BarContext(candle=c, window=None, position=0.0))  # type: ignore[arg-type]
    assert calls_old.calls > 0
    before = calls_old.calls

    assert ens.swap_model("lstm", new) == 1
    assert ens.book("BTC/USDT").models["lstm"] is new
    for c in candles[400:]:
        ens.evaluate(BarContext(candle=c, window=None, position=0.0))  # type: ignore[arg-type]
    assert calls_old.calls == before and calls_new.calls == 20  # every later bar uses the new model
    assert ens.swap_model("not_a_member", new) == 0
    assert ens.swap_model("lstm", tiny(3), symbol="ETH/USDT") == 0

    too_long = tiny(4, ModelSpec(name="lstm", kind="lstm", preset="small", window=200))
    with pytest.raises(ValueError, match="window"):
        ens.swap_model("lstm", too_long)
    assert ens.book("BTC/USDT").models["lstm"] is new  # a rejected swap changes nothing


def test_retrainer_swaps_into_the_running_ensemble(tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    target = model_dir(models_dir, "BTC/USDT", "1h", "lstm")
    save_model(tiny(0), target, DEFAULT_SPEC)
    candidate = save_model(tiny(5), tmp_path / "candidate", DEFAULT_SPEC)
    btc = NeuralEnsemble("btc", ("BTC/USDT",), "1h", models=["lstm"], models_dir=str(models_dir))
    daily = NeuralEnsemble("daily", ("BTC/USDT",), "1h", models={"lstm": tiny(6)})
    daily.timeframe = "1d"  # trades another series: must keep its model
    cfg = RetrainConfig(enabled=True, models_dir=models_dir)
    settings = SimpleNamespace(data=SimpleNamespace(dir=tmp_path), exchange=SimpleNamespace(name="binance"),
                               store=SimpleNamespace(path=tmp_path / "none.sqlite"))
    r = Retrainer(cfg, settings, hosts=[btc, daily, object()])
    before_daily = daily.book("BTC/USDT").models["lstm"]

    asyncio.run(r._swap(r.series[("BTC/USDT", "1h")], Verdict("lstm", "brier", 0.25, 0.2, True, str(candidate))))

    swapped = btc.book("BTC/USDT").models["lstm"]
    x = np.zeros((1, swapped.window, DEFAULT_SPEC.n_features), dtype=np.float32)
    assert np.allclose(swapped.predict(x), tiny(5).predict(x))  # the candidate's weights
    assert daily.book("BTC/USDT").models["lstm"] is before_daily
    assert (models_dir / "BTC_USDT_1h" / ".archive").exists()
