"""A streaming table fill: rows read while the workers run are final, errors reach the reader,
the interpreter's switch interval is given back."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from bot.marketdata.candle_csv import arrays_to_candles
from strategies.features.compute import DEFAULT_SPEC, compute_features
from strategies.models.registry import list_models, load_model
from strategies.neural import NeuralEnsemble
from strategies.predictor import ModelHolder
from strategies.table_fill import TableFill
from tests.strategies.test_helpers import MODEL_NAMES, SYMBOL, history, tiny_models_dir


@pytest.fixture(scope="module")
def models():
    return {p.name: load_model(p) for p in list_models(tiny_models_dir()) if p.name in MODEL_NAMES}


@pytest.fixture(scope="module")
def feats() -> np.ndarray:
    return compute_features(history("2021-01-01", "2021-03-01").arrays, DEFAULT_SPEC)


def broken_like(model):
    class Broken(type(model)):
        def _raw_output(self, xn: np.ndarray) -> np.ndarray:
            raise RuntimeError("broken model")

    return Broken(model.spec, model.n_features, model.normalizer)


def test_every_row_the_reader_waited_for_is_final(models, feats) -> None:
    want = TableFill(models, feats, batch_size=32, workers=1).result()
    before = sys.getswitchinterval()
    fill = TableFill(models, feats, batch_size=32, workers=2)
    for row in range(len(feats)):  # as a replay reads: bar after bar, while the chunks run
        fill.wait(row)
        for name in models:
            assert fill.out[name][row] == want[name][row] or (
                np.isnan(fill.out[name][row]) and np.isnan(want[name][row])), (name, row)
    got = fill.result()
    for name in models:
        np.testing.assert_array_equal(got[name], want[name])
    assert sys.getswitchinterval() == before


def test_a_chunk_error_reaches_the_reader(models, feats) -> None:
    before = sys.getswitchinterval()
    fill = TableFill({"lstm": models["lstm"], "bad": broken_like(models["gbm"])}, feats, batch_size=32, workers=2)
    with pytest.raises(RuntimeError, match="broken model"):
        fill.wait(len(feats) - 1)
    with pytest.raises(RuntimeError, match="broken model"):
        fill.result()
    assert sys.getswitchinterval() == before


def test_cancelled_fill_gives_the_switch_interval_back(models, feats) -> None:
    before = sys.getswitchinterval()
    fill = TableFill(models, feats, batch_size=32, workers=2)
    fill.cancel()
    for futures in fill._futures.values():
        for f in futures:
            if not f.cancelled():
                f.exception()  # wait for the chunks that had started
    assert sys.getswitchinterval() == before


def test_a_failed_fill_fails_the_replay_at_its_end(models) -> None:
    """A prepared replay whose table could not be filled raises from deferred_explanations
    (called by the Engine outside the strategy guard), even when no bar read the bad rows."""
    h = history("2021-01-01", "2021-02-01")
    holder = ModelHolder("ens", SYMBOL, "1h", {**models, "gbm": broken_like(models["gbm"])})
    strategy = NeuralEnsemble("ens", (SYMBOL,), "1h", {SYMBOL: holder})
    strategy.prepare_replay(SYMBOL, arrays_to_candles(h.arrays, "binance", SYMBOL, "1h"))
    with pytest.raises(RuntimeError, match="broken model"):
        strategy.deferred_explanations()
