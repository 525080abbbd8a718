"""Where the model registry keeps a model and how its ``meta.json`` is read: standard library only.

Callers that only look at metadata (the in-sample guard of ``neuralbot backtest``, which runs
for every strategy kind) import this instead of :mod:`strategies.models.registry`, which imports torch
and scikit-learn to build models (~2 s of start-up).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.core.errors import UserInputError


class RegistryError(UserInputError):
    """A model directory that cannot be loaded; the message names model, file and fix."""


RETRAIN = "retrain it (`neuralbot train --config FILE`) or restore the directory"


def meta_error(directory: Path, problem: str) -> RegistryError:
    return RegistryError(f"model {directory.name!r}: {directory / 'meta.json'}: {problem}; {RETRAIN}")


def model_dir(models_dir: Path | str, symbol: str, timeframe: str, name: str) -> Path:
    return Path(models_dir) / f"{symbol.replace('/', '_')}_{timeframe}" / name


def read_meta(directory: Path | str) -> dict[str, Any]:
    d = Path(directory)
    path = d / "meta.json"
    if not path.exists():
        raise RegistryError(f"no model at {directory} (missing meta.json); train it with"
                            " `neuralbot train --config FILE` or fix models_dir")
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise meta_error(d, "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise meta_error(d, f"not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(meta, dict):
        raise meta_error(d, f"expected a JSON object, got {type(meta).__name__}")
    return meta
