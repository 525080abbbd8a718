"""Model strategies from their configuration: registry models loaded into model holders.

A ``[[strategies]]`` entry of kind ``neural`` or ``meta_labeled`` names its models
(``models = ["lstm", ...]``, ``models_dir``, ``vol_model``); these factories load them
from the registry (``<models_dir>/<SYMBOL>_<timeframe>/<name>/``, see
:mod:`strategies.models.registry`), or take them in memory (``{name: Model}``), into one
:class:`~strategies.predictor.ModelHolder` per symbol, and build the strategy on those
holders: the strategies themselves load nothing, and the retrainer swaps models in the
holders (:meth:`strategies.base.Strategy.model_holders`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from strategies.features.compute import FeatureSpec, get_spec
from strategies.meta import MetaLabeled
from strategies.models.base import Model
from strategies.neural import NeuralEnsemble
from strategies.predictor import ModelHolder, require_classifier
from strategies.models.registry import load_model, model_dir, read_meta

DEFAULT_MODELS = ("lstm", "bilstm", "cnn_lstm", "transformer", "gbm")
ModelSource = Sequence[str] | Mapping[str, Model]


def load_one(models_dir: str, symbol: str, timeframe: str, name: str, spec: FeatureSpec) -> Model:
    path = model_dir(models_dir, symbol, timeframe, name)
    if not (Path(path) / "meta.json").exists():
        raise ValueError(f"model {name!r} not found at {path} (train it, or fix models_dir)")
    return load_model(path, spec)


def load_holders(owner: str, symbols: Sequence[str], timeframe: str, models: ModelSource, models_dir: str,
                 spec: FeatureSpec, vol_model: str | Model | None = None) -> dict[str, ModelHolder]:
    """One holder per symbol: the named registry models (with their validation log loss), or
    the in-memory ``{name: Model}`` shared by every symbol; ``vol_model`` likewise."""
    if not list(models):
        raise ValueError("models: list at least one model")
    out = {}
    for symbol in symbols:
        if isinstance(models, Mapping):
            loaded, losses = dict(models), {}
        else:
            loaded, losses = {}, {}
            for name in models:
                loaded[name] = load_one(models_dir, symbol, timeframe, name, spec)
                meta = read_meta(model_dir(models_dir, symbol, timeframe, name))
                losses[name] = float((meta.get("metrics", {}).get("val") or {}).get("log_loss") or "nan")
            for name, m in loaded.items():
                require_classifier(name, m)
        vm = load_one(models_dir, symbol, timeframe, vol_model, spec) if isinstance(vol_model, str) and vol_model \
            else (vol_model if isinstance(vol_model, Model) else None)
        out[symbol] = ModelHolder(owner, symbol, timeframe, loaded, vol_model=vm, losses=losses)
    return out


def neural_ensemble(name: str, symbols: tuple[str, ...], timeframe: str, models: ModelSource = DEFAULT_MODELS,
                    models_dir: str = "models", vol_model: str | Model | None = None, features: str = "default",
                    **options: Any) -> NeuralEnsemble:
    """A :class:`NeuralEnsemble` on its models (``options``: its other parameters)."""
    holders = load_holders(name, symbols, timeframe, models, models_dir, get_spec(features), vol_model)
    return NeuralEnsemble(name, symbols, timeframe, holders, features=features, **options)


def meta_labeled(name: str, symbols: tuple[str, ...], timeframe: str, models: ModelSource = ("meta",),
                 models_dir: str = "models", **options: Any) -> MetaLabeled:
    """A :class:`MetaLabeled` whose secondary model comes from ``models`` (``options``: its
    other parameters)."""
    holders = load_holders(f"{name}.secondary", symbols, timeframe, models, models_dir, get_spec("default"))
    return MetaLabeled(name, symbols, timeframe, holders, **options)
