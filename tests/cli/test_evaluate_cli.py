"""``neuralbot evaluate`` on a small, never-seen candle file runs end to end (and writes a report)."""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from bot.cli import evaluation as cmd
from bot.marketdata.candle_csv import load_ohlcv_arrays
from bot.evaluation import candidates
from strategies.models.spec import ModelSpec
from tests.conftest import BTC_1H

TINY = [
    ModelSpec(name="gbm", kind="gbm", preset="gbm", window=24, gbm_max_iter=5, gbm_lags=(0, 1)),
    ModelSpec(name="lstm", kind="lstm", preset="small", window=24, epochs=1, hidden=(8,), dense=(8,),
              max_train_windows=200),
]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="neuralbot")
    cmd.add_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.fixture
def small_file(tmp_path: Path, data_dir: Path) -> Path:
    """2,400 real hourly candles under a name the bot has never seen (timeframe from spacing)."""
    a = load_ohlcv_arrays(BTC_1H)
    start = int(np.searchsorted(a["ts"], 1546300800000))  # 2019-01-01
    path = tmp_path / "mystery-candles.csv.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("timestamp,open,high,low,close,volume\n")
        for i in range(start, start + 2400):
            fh.write(f"{a['ts'][i]},{a['open'][i]},{a['high'][i]},{a['low'][i]},{a['close'][i]},{a['volume'][i]}\n")
    return path


def test_evaluate_small_unseen_file_end_to_end(
    small_file: Path, write_config, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(candidates, "model_specs", lambda settings: TINY)
    config = write_config(
        '[[strategies]]\nname = "ma"\nkind = "ma_crossover"\nparams = { fast = 10, slow = 30 }\n\n'
        '[[strategies]]\nname = "hold"\nkind = "buy_and_hold"\n'
    )
    report = tmp_path / "report"
    args = parse(["evaluate", "--config", str(config), "--data", str(small_file), "--json",
                  "--no-progress", "--report", str(report)])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    (key,) = out
    assert key.endswith(" 1h")  # inferred from the bar spacing
    scores = out[key]
    assert set(scores) == {"gbm", "lstm", "ensemble", "ensemble_vote", "ma", "hold"}
    for name, s in scores.items():
        for field in ("win_rate", "sharpe", "sortino", "max_drawdown", "annual_return", "profit_factor",
                      "trades", "exposure", "turnover", "trades_per_month", "accuracy", "accuracy_ci"):
            assert field in s, (name, field)
        assert s["bars"] > 0 and s["first_ts"] == scores["gbm"]["first_ts"]  # same span for all
    assert scores["hold"]["exposure"] > 0.9
    assert scores["gbm"]["brier"] is not None and 0 <= scores["gbm"]["ece"] <= 1
    html = (report / "index.html").read_text()
    for png in ("equity", "drawdown", "monthly", "reliability", "folds"):
        assert any(p.name.startswith(png) for p in report.glob("*.png")), png
        assert f"{png}-" in html
    assert json.loads((report / "metrics.json").read_text())
    trades = (report / next(p.name for p in report.glob("trades-*-ma.csv"))).read_text().splitlines()
    assert trades[0].endswith("entry_why,exit_why") and "fast-slow gap" in trades[1]  # why it traded


def test_evaluate_reports_a_missing_file(write_config, tmp_path: Path) -> None:
    args = parse(["evaluate", "--config", str(write_config()), "--data", str(tmp_path / "nope.csv")])
    assert args.func(args) == 1


def test_symbol_and_timeframe_from_the_file_name() -> None:
    assert cmd.infer_symbol_timeframe(Path("ETH_USDT-4h.csv.gz"), np.array([0, 1])) == ("ETH/USDT", "4h")
    assert cmd.infer_symbol_timeframe(Path("x.csv"), np.array([0, 86_400_000, 172_800_000]))[1] == "1d"


def test_walkforward_command_on_configured_symbol(
    write_config, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(candidates, "model_specs", lambda settings: TINY[:1])
    config = write_config("[backtest]\nstart = 2019-01-01\nend = 2019-05-01\n"
                          f'[walkforward]\nmin_train_days = 60\nretrain_every = "30d"\n'
                          f'cache_dir = "{tmp_path / "wf-cache"}"\n')
    args = parse(["walkforward", "--config", str(config), "--json", "--no-progress"])
    assert args.func(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["BTC/USDT 1h"]) == {"gbm", "ma", "buy_and_hold"}  # the baseline is always there


def test_walkforward_records_every_strategy_in_the_ledger_and_deflates(
    write_config, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each run appends its strategies to the trial ledger; the deflated Sharpe counts them all."""
    from bot.store.trials import read_trials

    monkeypatch.setattr(candidates, "model_specs", lambda settings: TINY[:1])
    outs = []
    for fast in (10, 12):  # a second configuration tried on the same series
        config = write_config("[backtest]\nstart = 2019-01-01\nend = 2019-05-01\n"
                              f'[walkforward]\nmin_train_days = 60\nretrain_every = "30d"\n'
                              f'cache_dir = "{tmp_path / "wf-cache"}"\n'
                              f'[[strategies]]\nname = "ma"\nkind = "ma_crossover"\n'
                              f"params = {{ fast = {fast}, slow = 30 }}\n")
        args = parse(["walkforward", "--config", str(config), "--json", "--no-progress"])
        assert args.func(args) == 0
        outs.append(json.loads(capsys.readouterr().out)["BTC/USDT 1h"])

    ledger = read_trials(tmp_path / "bot.sqlite")
    assert sorted(r["strategy"] for r in ledger) == sorted(["gbm", "ma", "buy_and_hold"] * 2)
    assert all(r["source"] == "walkforward" and r["span"] == "oos" for r in ledger)
    assert outs[0]["ma"]["n_trials"] == 3 and outs[1]["ma"]["n_trials"] == 6
    for s in outs[1].values():
        assert 0.0 <= s["dsr"] <= s["psr"] + 1e-12 <= 1.0 + 1e-12  # deflating never raises the odds


def test_evaluate_scores_a_configured_decision_layer_strategy_and_every_regime(
    small_file: Path, write_config, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    meta = ModelSpec(name="meta", kind="gbm", target="meta_trend", horizon=6, window=24, gbm_max_iter=5,
                     gbm_lags=(0, 1), meta_fast=10, meta_slow=30)
    monkeypatch.setattr(candidates, "model_specs", lambda settings: [*TINY, meta])
    config = write_config(
        '[[strategies]]\nname = "metalabeled"\nkind = "meta_labeled"\n'
        'params = { models = ["meta"], fast = 10, slow = 30 }\n\n'
        '[[strategies]]\nname = "edge"\nkind = "neural"\n'
        'params = { models = ["gbm", "lstm"], decision = { cost = 0.0, enter_margin = 0.0, band = 0.0 } }\n\n'
        '[[strategies]]\nname = "chosen"\nkind = "neural"\n'
        'params = { models = ["gbm", "lstm"], decision = { enter_margin = "validation" } }\n\n'
        '[[strategies]]\nname = "strict"\nkind = "neural"\n'
        'params = { models = ["gbm", "lstm"], decision = { enter_margin = 0.001 } }\n\n'
        '[[strategies]]\nname = "ma"\nkind = "ma_crossover"\nparams = { fast = 10, slow = 30 }\n')
    args = parse(["evaluate", "--config", str(config), "--data", str(small_file), "--json", "--no-progress"])
    assert args.func(args) == 0
    (scores,) = json.loads(capsys.readouterr().out).values()
    assert {"edge", "chosen", "strict", "metalabeled", "ma", "buy_and_hold"} <= set(scores)
    assert "meta" not in scores  # the secondary never trades alone
    assert scores["metalabeled"]["exposure"] <= scores["ma"]["exposure"] + 1e-9  # it only filters the trend
    assert scores["edge"]["trades"] > 0  # without costs the layer trades the one-bar forecasts ...
    assert scores["strict"]["trades"] == 0  # ... with the configured 0.32% round trip it does not
    for s in scores.values():
        assert set(s["regimes"]) == {"bull", "bear", "sideways"}
        assert sum(r["bars"] for r in s["regimes"].values()) == s["bars"]
