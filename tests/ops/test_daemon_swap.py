"""Hot swap: a model swapped in the strategy's ``ModelHolder`` takes effect on the next bar;
the retrainer swaps there."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from bot.config.settings import RetrainConfig
from bot.marketdata.candle_csv import candle_file, load_candles_csv
from bot.ops.retrain import Retrainer
from bot.ops.retrain_job import Verdict
from strategies.base import BarContext
from strategies.features.compute import DEFAULT_SPEC
from strategies.models.spec import ModelSpec
from strategies.models.zoo import build_model
from strategies.holders import neural_ensemble
from strategies.models.registry import model_dir, save_model

SPEC = ModelSpec(name="lstm", kind="lstm", preset="small")


def tiny(seed: int, spec: ModelSpec = SPEC) -> Any:
    torch.manual_seed(seed)
    m = build_model(spec, DEFAULT_SPEC.n_features)
    m.module.eval()
    return m


class Counting:
    """Wraps a model's ``predict_one`` (the live path's prediction) to count calls (the model itself is real)."""

    def __init__(self, model: Any) -> None:
        self.calls = 0
        inner = model.predict_one

        def predict_one(x: np.ndarray) -> float:
            self.calls += 1
            return inner(x)

        model.predict_one = predict_one


def bars(data_dir: Path, n: int) -> list[Any]:
    path = candle_file(data_dir, "binance", "BTC/USDT", "1h")
    return load_candles_csv(path, "binance", "BTC/USDT", "1h", 1_609_459_200_000, None)[:n]


def test_a_swap_in_the_holder_takes_effect_on_the_next_bar(data_dir: Path) -> None:
    old, new, other = tiny(0), tiny(1), tiny(2)
    ens = neural_ensemble("ens", ("BTC/USDT",), "1h", models={"lstm": old, "lstm_b": other}, vote_k=1,
                          explain="none")
    holder = ens.holder("BTC/USDT")
    calls_old, calls_new = Counting(old), Counting(new)
    candles = bars(data_dir, 420)
    for c in candles[:400]:
        ens.evaluate(BarContext(candle=c, window=None, position=0.0))  # type: ignore[arg-type]
    assert calls_old.calls > 0
    before = calls_old.calls

    assert holder.swap("lstm", new) is True
    assert holder.models["lstm"] is new and holder.models["lstm_b"] is other
    for c in candles[400:]:
        ens.evaluate(BarContext(candle=c, window=None, position=0.0))  # type: ignore[arg-type]
    assert calls_old.calls == before and calls_new.calls == 20  # every later bar uses the new model
    assert holder.swap("not_a_member", new) is False
    with pytest.raises(TypeError):
        holder.models["lstm"] = old  # type: ignore[index]  # only ``swap`` changes the members

    too_long = tiny(4, ModelSpec(name="lstm", kind="lstm", preset="small", window=200))
    with pytest.raises(ValueError, match="window"):
        holder.swap("lstm", too_long)
    assert holder.models["lstm"] is new and holder.version == 1  # a rejected swap changes nothing


def test_a_swap_retires_the_precomputed_table(data_dir: Path) -> None:
    """A table computed with the old model no longer stands: later bars predict live, with the new one."""
    from strategies.features.history import OHLCV_KEYS, clean_history

    old, new = tiny(0), tiny(1)
    ens = neural_ensemble("ens", ("BTC/USDT",), "1h", models={"lstm": old}, vote_k=1, explain="none")
    candles = bars(data_dir, 700)
    arrays = {k: np.array([getattr(c, k) for c in candles]) for k in OHLCV_KEYS}
    ens.precompute("BTC/USDT", clean_history(arrays, "BTC/USDT", "1h"))
    calls_old, calls_new = Counting(old), Counting(new)
    def run(some: list[Any]) -> list[Any]:
        return [ens.evaluate(BarContext(candle=c, window=None, position=0.0)) for c in some]  # type: ignore[arg-type]

    first = run(candles[:300])
    assert any(first) and calls_old.calls == 0  # looked up in the table
    assert ens.holder("BTC/USDT").swap("lstm", new)
    later = run(candles[300:])
    assert ens.book("BTC/USDT").table is None and calls_old.calls == 0
    assert calls_new.calls == sum(s is not None for s in later) > 0  # every later signal: the new model, live


def test_retrainer_swaps_into_the_running_ensemble(tmp_path: Path) -> None:
    models_dir = tmp_path / "models"
    target = model_dir(models_dir, "BTC/USDT", "1h", "lstm")
    save_model(tiny(0), target, DEFAULT_SPEC)
    candidate = save_model(tiny(5), tmp_path / "candidate", DEFAULT_SPEC)
    btc = neural_ensemble("btc", ("BTC/USDT",), "1h", models=["lstm"], models_dir=str(models_dir))
    daily = neural_ensemble("daily", ("BTC/USDT",), "1d", models={"lstm": tiny(6)})  # another series
    cfg = RetrainConfig(enabled=True, models_dir=models_dir)
    settings = SimpleNamespace(data=SimpleNamespace(dir=tmp_path), exchange=SimpleNamespace(name="binance"),
                               store=SimpleNamespace(path=tmp_path / "none.sqlite"))
    r = Retrainer(cfg, settings, holders=[*btc.model_holders(), *daily.model_holders()])
    before_daily = daily.holder("BTC/USDT").models["lstm"]

    asyncio.run(r._swap(r.series[("BTC/USDT", "1h")], Verdict("lstm", "brier", 0.25, 0.2, True, str(candidate))))

    swapped = btc.holder("BTC/USDT").models["lstm"]
    x = np.zeros((1, swapped.window, DEFAULT_SPEC.n_features), dtype=np.float32)
    assert np.allclose(swapped.predict(x), tiny(5).predict(x))  # the candidate's weights
    assert daily.holder("BTC/USDT").models["lstm"] is before_daily
    assert (models_dir / "BTC_USDT_1h" / ".archive").exists()
