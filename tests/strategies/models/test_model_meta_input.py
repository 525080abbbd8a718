"""A bad or incompatible model ``meta.json`` names the model, the file and the fix; the CLI exits 2."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.cli.parser import main
from strategies.features.compute import DEFAULT_SPEC
from strategies.models.spec import ModelSpec
from strategies.models.registry import RegistryError, load_model, model_dir, save_model
from strategies.training.synthetic import random_walk_history
from strategies.training.pipeline import Dataset, train_model


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ds = Dataset.build(random_walk_history(600, seed=3), DEFAULT_SPEC)
    res = train_model(ModelSpec(name="gbm", kind="gbm", gbm_max_iter=5, window=16, seed=0), ds)
    root = tmp_path_factory.mktemp("models")
    save_model(res.model, model_dir(root, "BTC/USDT", "1h", "gbm"), DEFAULT_SPEC)
    return root


def _meta(d: Path) -> dict:
    return json.loads((d / "meta.json").read_text())


def _write(d: Path, meta: object) -> None:
    (d / "meta.json").write_text(json.dumps(meta))


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "not-json": lambda d: (d / "meta.json").write_text("{ not json"),
    "a-list": lambda d: _write(d, [1, 2]),
    "missing-key": lambda d: _write(d, {k: v for k, v in _meta(d).items() if k != "n_features"}),
    "wrong-type": lambda d: _write(d, {**_meta(d), "n_features": "many"}),
    "bad-spec": lambda d: _write(d, {**_meta(d), "spec": {**_meta(d)["spec"], "kind": "oracle"}}),
    "bad-normalizer": lambda d: _write(d, {**_meta(d), "normalizer": {"oops": 1}}),
    "bad-y-scale": lambda d: _write(d, {**_meta(d), "y_scale": "unit"}),
    "old-api": lambda d: _write(d, {**_meta(d), "model_api_version": -1}),
    "no-weights": lambda d: (d / "estimator.pkl").unlink(),
    "binary": lambda d: (d / "meta.json").write_bytes(b"\xff\xfe\x00garbage"),
}


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_bad_meta_names_model_file_and_fix(saved: Path, tmp_path: Path, name: str) -> None:
    import shutil

    root = tmp_path / "models"
    shutil.copytree(saved, root)
    d = model_dir(root, "BTC/USDT", "1h", "gbm")
    CORRUPTIONS[name](d)
    with pytest.raises(RegistryError) as err:
        load_model(d, DEFAULT_SPEC)
    text = str(err.value)
    assert "'gbm'" in text and str(d) in text and "neuralbot train" in text, text
    assert "\n" not in text


def test_backtest_with_bad_meta_exits_2_in_one_line(saved: Path, tmp_path: Path, write_config,
                                                    capsys) -> None:
    import shutil

    root = tmp_path / "models"
    shutil.copytree(saved, root)
    d = model_dir(root, "BTC/USDT", "1h", "gbm")
    CORRUPTIONS["missing-key"](d)
    cfg = write_config('[backtest]\nstart = 2020-01-01\nend = 2020-01-10\n'
                       f'[[strategies]]\nname = "nn"\nkind = "neural"\n'
                       f'params = {{ models = ["gbm"], models_dir = "{root}", vote_k = 1 }}\n')
    code = main(["backtest", "--config", str(cfg)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "meta.json" in err and "n_features" in err, err
