"""Model registry: one directory per trained model.

``<models_dir>/<symbol>_<timeframe>/<name>/``

* ``meta.json``: registry format, model API version, architecture (the full
  :class:`ModelSpec`), feature spec (dict + hash), normalisation statistics
  (fitted on the training split), calibration, regression target scaling,
  training data range, fit report, metrics, library versions, weights checksum;
* ``weights.pt`` (torch ``state_dict``, loaded with ``weights_only=True``) or
  ``estimator.pkl`` (scikit-learn; pickle, so load only models you trained);
* gradient boosting, from registry format 2: ``trees.npz``, the estimator's flattened trees
  (:class:`strategies.models.flat_trees.FlatTrees`, plain arrays), which is what loading reads:
  the estimator is unpickled only when asked for, so loading imports no scikit-learn. A format 1
  directory (no ``trees.npz``) loads as before, through the estimator.

:func:`load_model` refuses a model whose feature spec hash differs from the
running configuration's, with an explicit message.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import pickle
import platform
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from strategies.models.calibration import calibrator_from_dict
from strategies.features.compute import FeatureSpec
from strategies.models.spec import ModelSpec
from strategies.models.base import MODEL_API_VERSION, Model
from strategies.models.flat_trees import FlatTrees
from strategies.models.gbm import GBMModel
from strategies.models.torch_base import TorchModel
from strategies.models.zoo import build_model
from strategies.models.registry_files import RETRAIN, RegistryError, meta_error, model_dir, read_meta
from strategies.features.windows import Normalizer

log = structlog.get_logger(__name__)

REGISTRY_FORMAT = 2  # 2: gradient boosting also keeps trees.npz (format 1 directories still load)


class FeatureSpecMismatch(RegistryError, ValueError):
    """The model was trained on different features than the running config computes."""


class _NormalizerMeta(BaseModel):
    mean: list[float]
    std: list[float]
    clip: float | None = None


class _YScaleMeta(BaseModel):
    mean: float
    std: float


class ModelMeta(BaseModel):
    """The part of ``meta.json`` that loading relies on, checked before anything is built."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    name: str
    spec: ModelSpec
    n_features: int = Field(ge=1)
    feature_spec: dict[str, Any]
    feature_spec_hash: str
    feature_columns: list[str] = Field(default_factory=list)
    normalizer: _NormalizerMeta
    calibration: dict[str, Any]
    y_scale: _YScaleMeta
    weights_file: str
    weights_sha256: str
    trees_file: str | None = None  # format 2, gradient boosting
    trees_sha256: str | None = None


def library_versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "sklearn": importlib.metadata.version("scikit-learn")}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _clean(obj: Any) -> Any:
    """JSON-safe copy (NaN -> None, numpy scalars -> Python)."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def save_model(
    model: Model,
    directory: Path | str,
    feature_spec: FeatureSpec,
    *,
    data_range: dict[str, object] | None = None,
    metrics: dict[str, object] | None = None,
    fit_report: object | None = None,
) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(model, TorchModel):
        weights = d / "weights.pt"
        torch.save(model.get_state(), weights)
    else:
        weights = d / "estimator.pkl"
        weights.write_bytes(pickle.dumps(model.get_state(), protocol=pickle.HIGHEST_PROTOCOL))
    trees = _save_trees(model, d)
    meta = {
        "registry_format": REGISTRY_FORMAT,
        "model_api_version": MODEL_API_VERSION,
        "name": model.name,
        "kind": model.spec.kind,
        "task": model.task,
        "spec": model.spec.model_dump(mode="json"),
        "n_features": model.n_features,
        "feature_spec": feature_spec.to_dict(),
        "feature_spec_hash": feature_spec.hash(),
        "feature_columns": list(feature_spec.columns),
        "normalizer": model.normalizer.to_dict(),
        "calibration": model.calibrator.to_dict(),
        "y_scale": {"mean": model.y_mean, "std": model.y_std},
        "data_range": data_range or {},
        "metrics": metrics or {},
        "fit_report": asdict(fit_report) if fit_report is not None else {},  # type: ignore[call-overload]
        "library_versions": library_versions(),
        "weights_file": weights.name,
        "weights_sha256": _sha256(weights),
        **({"trees_file": trees.name, "trees_sha256": _sha256(trees)} if trees is not None else {}),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (d / "meta.json").write_text(json.dumps(_clean(meta), indent=2, sort_keys=True))
    log.info("model_saved", model=model.name, path=str(d), feature_spec_hash=meta["feature_spec_hash"])
    return d


def _validated(d: Path, meta: dict[str, Any]) -> ModelMeta:
    if meta.get("model_api_version") != MODEL_API_VERSION:
        raise meta_error(d, f"model API version {meta.get('model_api_version')!r} is not the supported"
                             f" {MODEL_API_VERSION}")
    try:
        return ModelMeta.model_validate(meta)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise meta_error(d, f"{key}: {err['msg']}") from None


def load_model(directory: Path | str, expected_spec: FeatureSpec | None = None) -> Model:
    """Load a saved model; with ``expected_spec``, fail unless its feature hash matches."""
    d = Path(directory)
    meta = _validated(d, read_meta(d))
    if expected_spec is not None and meta.feature_spec_hash != expected_spec.hash():
        saved = meta.feature_columns
        now = list(expected_spec.columns)
        raise FeatureSpecMismatch(
            f"model {meta.name!r} at {d} was trained on feature spec "
            f"{meta.feature_spec.get('name')!r} (hash {meta.feature_spec_hash}), but the running "
            f"config computes {expected_spec.name!r} (hash {expected_spec.hash()}); "
            f"only in model: {sorted(set(saved) - set(now))}, only in config: "
            f"{sorted(set(now) - set(saved))}. Retrain with `neuralbot train` or fix the config."
        )
    weights = d / meta.weights_file
    data = _checked(d, weights, meta.weights_sha256)
    normalizer = Normalizer.from_dict(meta.normalizer.model_dump(exclude_none=True))
    model = build_model(meta.spec, meta.n_features, normalizer)
    if isinstance(model, TorchModel):
        model.set_state(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))
    elif isinstance(model, GBMModel) and meta.trees_file is not None:
        trees = _checked(d, d / meta.trees_file, meta.trees_sha256 or "")
        with np.load(io.BytesIO(trees), allow_pickle=False) as arrays:
            model.set_trees(FlatTrees.from_arrays(arrays), lambda: pickle.loads(data)["estimator"])
    else:
        model.set_state(pickle.loads(data))
    model.calibrator = calibrator_from_dict(meta.calibration)
    model.y_mean = meta.y_scale.mean
    model.y_std = meta.y_scale.std
    return model


def _save_trees(model: Model, d: Path) -> Path | None:
    """A gradient-boosting model's flattened trees, beside its estimator (format 2)."""
    if not isinstance(model, GBMModel) or model.trees is None:
        return None
    path = d / "trees.npz"
    with path.open("wb") as f:
        np.savez(f, **model.trees.to_arrays())
    return path


def _checked(d: Path, path: Path, sha256: str) -> bytes:
    """The bytes of a model's file, refused when missing or not those its meta.json names."""
    if not path.is_file():
        raise RegistryError(f"model {d.name!r}: {path} is missing; {RETRAIN}")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RegistryError(f"model {d.name!r}: {path}: checksum mismatch (file modified or corrupt);"
                            f" {RETRAIN}")
    return data


def list_models(models_dir: Path | str) -> list[Path]:
    return sorted(p.parent for p in Path(models_dir).glob("*/*/meta.json"))
