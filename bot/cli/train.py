"""``neuralbot train --config FILE``: train every configured model and report test metrics.

Reads the configuration's ``[[models]]`` entries (each a :class:`strategies.models.spec.ModelSpec`)
and its ``[train]`` table (``symbol``, ``timeframe``, ``start``, ``end``, ``models_dir``,
``threads``); the data comes from ``[data] dir``. Without ``[[models]]`` the
default ensemble (2 LSTM variants, CNN-LSTM, Transformer, gradient boosting) is
trained. Each model is saved to the registry under ``models_dir``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bot.cli.common import load_config_or_exit


def add_parsers(subparsers: Any) -> None:
    p = subparsers.add_parser("train", help="train the configured models and print test-split metrics")
    p.add_argument("--config", default=None, help="TOML configuration ([[models]], [train])")
    p.add_argument("--data-dir", type=Path, default=None)
    p.add_argument("--symbol", default=None)
    p.add_argument("--timeframe", default=None)
    p.add_argument("--models-dir", type=Path, default=None)
    p.add_argument("--only", action="append", default=None, help="train only this model name (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="disable progress bars")
    p.set_defaults(func=handler)


def _fmt(x: float | None) -> str:
    return "   -  " if x is None or x != x else f"{x:6.3f}"


def format_table(rows: list[tuple[str, str, float, dict[str, float]]]) -> str:
    head = (f"{'model':<14}{'target':<14}{'acc':>7}{'prec':>7}{'rec':>7}{'f1':>7}{'logloss':>8}"
            f"{'brier':>7}{'ece':>7}{'auc':>7}{'base':>7}{'n':>7}{'secs':>7}")
    lines = [head, "-" * len(head)]
    for name, target, secs, m in rows:
        if "accuracy" in m:
            vals = [m["accuracy"], m["precision"], m["recall"], m["f1"], m["log_loss"], m["brier"],
                    m["ece"], m["auc"], m["base_rate"]]
            cells = "".join(f"{_fmt(v):>7}" for v in vals[:4]) + f"{_fmt(vals[4]):>8}"
            cells += "".join(f"{_fmt(v):>7}" for v in vals[5:])
        else:
            cells = f"  mae {m['mae']:.5f}  rmse {m['rmse']:.5f}  r2 {m['r2']:.3f}  corr {m['corr']:.3f}"
            cells = f"{cells:<67}"
        lines.append(f"{name:<14}{target:<14}{cells}{int(m['n']):>7}{secs:>7.1f}")
    return "\n".join(lines)


def handler(args: argparse.Namespace) -> int:
    # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
    from bot.config.settings import train_config
    from strategies.features.compute import get_spec
    from strategies.models.registry import model_dir, save_model
    from strategies.training.pipeline import iter_train

    cfg = train_config(load_config_or_exit(args))
    overrides = {"data_dir": args.data_dir, "symbol": args.symbol, "timeframe": args.timeframe,
                 "models_dir": args.models_dir}
    cfg = cfg.model_copy(update={k: v for k, v in overrides.items() if v is not None})
    if args.only:
        cfg = cfg.model_copy(update={"models": tuple(m for m in cfg.models if m.name in args.only)})
    if not cfg.models:
        print("train: no models to train", file=sys.stderr)
        return 2
    progress = not args.no_progress and sys.stderr.isatty()
    print(f"training {len(cfg.models)} model(s) on {cfg.symbol} {cfg.timeframe} "
          f"[{cfg.start or '...'} .. {cfg.end or '...'}) from {cfg.data_dir}")
    rows: list[tuple[str, str, float, dict[str, float]]] = []
    warnings: list[str] = []
    try:
        for res in iter_train(cfg, progress=progress):
            spec = res.model.spec
            d = model_dir(cfg.models_dir, cfg.symbol, cfg.timeframe, spec.name)
            save_model(res.model, d, get_spec(spec.features), data_range=res.data_range,
                       metrics=res.metrics, fit_report=res.report)
            rows.append((spec.name, f"{spec.target}@{spec.horizon}", res.seconds, res.metrics["test"]))
            warnings += res.warnings
    except FileNotFoundError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 2
    print("\ntest-split metrics")
    print(format_table(rows))
    for w in warnings:
        print(f"WARNING: {w}")
    print(f"\nsaved to {cfg.models_dir}")
    return 0
