"""``neuralbot train`` subcommand on a short slice of real BTC data with tiny models."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from bot.cli.train import add_parsers
from bot.config.settings import train_config
from bot.config.load import load_settings
from strategies.models.registry import list_models, load_model
from strategies.features.compute import DEFAULT_SPEC

torch.set_num_threads(1)

STRATEGY = '\n[[strategies]]\nname = "ma"\nkind = "ma_crossover"\n'

CONFIG = """
[train]
symbol = "BTC/USDT"
timeframe = "1h"
start = "2021-01-01"
end = "2021-03-01"

[[models]]
name = "lstm_tiny"
kind = "lstm"
window = 24
hidden = [8]
dense = [4]
epochs = 2

[[models]]
name = "gbm_tiny"
kind = "gbm"
window = 24
gbm_max_iter = 20
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neuralbot")
    add_parsers(p.add_subparsers(dest="command"))
    return p


def test_config_parsing(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('[train]\nsymbol = "ETH/USDT"\ntimeframe = "1d"\n'
                 '[[models]]\nname = "a"\nkind = "lstm"\npreset = "article"\nepochs = 3\n' + STRATEGY)
    cfg = train_config(load_settings(f))
    assert cfg.symbol == "ETH/USDT" and cfg.timeframe == "1d"
    (m,) = cfg.models
    assert m.hidden == (128, 64) and m.window == 100 and m.epochs == 3
    f.write_text(STRATEGY)
    assert len(train_config(load_settings(f)).models) == 5


def test_train_command(tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "train.toml"
    cfg.write_text(CONFIG + STRATEGY)
    args = parser().parse_args(["train", "--config", str(cfg), "--data-dir", str(data_dir),
                                "--models-dir", str(tmp_path / "models"), "--no-progress"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "test-split metrics" in out and "lstm_tiny" in out and "gbm_tiny" in out
    for col in ("acc", "prec", "rec", "f1", "logloss", "brier", "ece", "auc"):
        assert col in out
    saved = list_models(tmp_path / "models")
    assert [p.name for p in saved] == ["gbm_tiny", "lstm_tiny"]
    model = load_model(saved[1], DEFAULT_SPEC)
    assert model.window == 24


def test_bad_config_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad.toml"
    f.write_text('[[models]]\nname = "x"\nkind = "nope"\n' + STRATEGY)
    args = parser().parse_args(["train", "--config", str(f), "--no-progress"])
    with pytest.raises(SystemExit) as exc:
        args.func(args)
    assert exc.value.code == 2
    assert "models[0].kind" in capsys.readouterr().err
