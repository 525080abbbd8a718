"""Registry format 2: a gradient-boosting model loads from its flattened trees (``trees.npz``)
without scikit-learn; format 1 directories (the estimator alone) still load, to the same values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from strategies.features.compute import DEFAULT_SPEC
from strategies.models.gbm import GBMModel
from strategies.models.registry import REGISTRY_FORMAT, RegistryError, load_model, save_model
from strategies.models.spec import ModelSpec
from strategies.training.pipeline import Dataset, prepare, train_model
from strategies.training.synthetic import random_walk_history
from tests.paths import REPO

SPECS = [
    ModelSpec(name="gbm", kind="gbm", gbm_max_iter=20, window=16, seed=0),
    ModelSpec(name="iso", kind="gbm", gbm_max_iter=10, calibration="isotonic", window=16, seed=0),
    ModelSpec(name="rv", kind="gbm", target="realized_vol", horizon=24, calibration="none", gbm_max_iter=10,
              window=16, seed=0),
]


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return Dataset.build(random_walk_history(1500, seed=5), DEFAULT_SPEC)


def as_format_1(d: Path) -> None:
    """What the registry wrote before format 2: no trees.npz, no trees_* keys."""
    (d / "trees.npz").unlink()
    meta = json.loads((d / "meta.json").read_text())
    del meta["trees_file"], meta["trees_sha256"]
    meta["registry_format"] = 1
    (d / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True))


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_format_1_and_2_load_to_the_fitted_values(ds: Dataset, spec: ModelSpec, tmp_path: Path) -> None:
    res = train_model(spec, ds)
    new, old = (save_model(res.model, tmp_path / f, DEFAULT_SPEC) for f in ("new", "old"))
    assert json.loads((new / "meta.json").read_text())["registry_format"] == REGISTRY_FORMAT == 2
    as_format_1(old)
    w = prepare(ds, spec).windows
    want = res.model.predict_windows(w)
    for d in (new, old):
        loaded = load_model(d, DEFAULT_SPEC)
        np.testing.assert_array_equal(loaded.predict_windows(w), want)
        np.testing.assert_array_equal(loaded.predict(w.x(slice(0, 3))), res.model.predict(w.x(slice(0, 3))))
        assert isinstance(loaded, GBMModel) and loaded.trees is not None
        for k, v in res.model.trees.to_arrays().items():  # type: ignore[union-attr]
            got = loaded.trees.to_arrays()[k]
            assert got.dtype == v.dtype and np.array_equal(got, v), k


def test_the_estimator_is_read_on_demand_and_saves_again(ds: Dataset, tmp_path: Path) -> None:
    res = train_model(SPECS[0], ds)
    loaded = load_model(save_model(res.model, tmp_path / "a", DEFAULT_SPEC))
    assert isinstance(loaded, GBMModel)
    assert loaded.estimator.n_iter_ == res.model.estimator.n_iter_
    again = load_model(save_model(loaded, tmp_path / "b", DEFAULT_SPEC))
    w = prepare(ds, SPECS[0]).windows
    np.testing.assert_array_equal(again.predict_windows(w), res.model.predict_windows(w))


def test_a_tampered_or_missing_trees_file_is_refused(ds: Dataset, tmp_path: Path) -> None:
    d = save_model(train_model(SPECS[0], ds).model, tmp_path / "gbm", DEFAULT_SPEC)
    (d / "trees.npz").write_bytes(b"junk")
    with pytest.raises(RegistryError, match="trees.npz: checksum"):
        load_model(d)
    (d / "trees.npz").unlink()
    with pytest.raises(RegistryError, match="trees.npz is missing"):
        load_model(d)


def test_loading_and_predicting_import_no_scikit_learn(ds: Dataset, tmp_path: Path) -> None:
    d = save_model(train_model(SPECS[0], ds).model, tmp_path / "gbm", DEFAULT_SPEC)
    code = (
        "import sys, numpy as np\n"
        "from strategies.models.registry import load_model\n"
        f"m = load_model({str(d)!r})\n"
        "print(m.predict(np.zeros((m.window, m.n_features), dtype=np.float32))[0])\n"
        "print(sorted(k for k in sys.modules if k.split('.')[0] == 'sklearn'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "[]", out.stdout
