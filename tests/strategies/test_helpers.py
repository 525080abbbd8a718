"""Shared helpers for the strategy tests: tiny real models trained on real BTC data.

Not a test module by content (no tests); named to fall under the strategy tests' files.
Models are trained once per test session (cached) into a temporary registry.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

import torch

from strategies.features.compute import DEFAULT_SPEC
from strategies.features.history import History, load_history
from strategies.models.spec import ModelSpec
from strategies.models.registry import model_dir, save_model
from strategies.training.pipeline import Dataset, train_model
from tests.paths import REPO

DATA_DIR = (REPO.parent / "shared" / "data").resolve()
SYMBOL = "BTC/USDT"
TRAIN_START, TRAIN_END = "2020-06-01", "2020-10-01"  # ~2,900 hourly bars

_TINY = dict(window=24, epochs=2, batch_size=128, stride=3, patience=1, dropout=0.0)
TINY_SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(name="lstm", kind="lstm", hidden=(8,), dense=(8,), **_TINY),
    ModelSpec(name="lstm_b", kind="lstm", hidden=(6, 6), dense=(), seed=1, **_TINY),
    ModelSpec(name="cnn_lstm", kind="cnn_lstm", conv_channels=(8,), hidden=(8,), dense=(), **_TINY),
    ModelSpec(name="transformer", kind="transformer", d_model=8, n_heads=2, n_layers=1, ff_dim=16,
              dense=(), **_TINY),
    ModelSpec(name="gbm", kind="gbm", gbm_max_iter=30, window=24, gbm_lags=(0, 1, 3, 6),
              class_balance=False),  # balanced weights make sklearn binning ~40x slower
)
VOL_SPEC = ModelSpec(name="vol", kind="gbm", target="realized_vol", horizon=168,
                     calibration="none", class_balance=False, gbm_max_iter=20, window=24,
                     gbm_lags=(0, 1))
# the secondary of the meta-labeling example (docs/strategies.md): the trend rule's trades after costs
META_SPEC = ModelSpec(name="meta", kind="gbm", target="meta_trend", horizon=12, window=24, gbm_max_iter=20,
                      gbm_lags=(0, 1, 3), class_balance=False)
MODEL_NAMES = tuple(s.name for s in TINY_SPECS)


def history(start: str, end: str, timeframe: str = "1h") -> History:
    return load_history(DATA_DIR, SYMBOL, timeframe, start, end)


def train_into(models_dir: Path, specs: tuple[ModelSpec, ...], timeframe: str = "1h",
               start: str = TRAIN_START, end: str = TRAIN_END) -> Path:
    torch.set_num_threads(1)
    ds = Dataset.build(history(start, end, timeframe), DEFAULT_SPEC)
    for spec in specs:
        res = train_model(spec, ds)
        save_model(res.model, model_dir(models_dir, SYMBOL, timeframe, spec.name), DEFAULT_SPEC,
                   data_range=res.data_range, metrics=res.metrics, fit_report=res.report)
    return models_dir


@functools.cache
def tiny_models_dir() -> Path:
    """A registry with the five tiny 1h classifiers, a volatility regressor and a meta-labeling
    classifier (trained once)."""
    root = Path(tempfile.mkdtemp(prefix="neuralbot-models-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return train_into(root / "models", TINY_SPECS + (VOL_SPEC, META_SPEC))
