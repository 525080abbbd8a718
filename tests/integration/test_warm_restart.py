"""A restarted daemon emits, from its first live bar, the signals of one that never stopped.

Two daemons replay the same recorded BTC/USDT hours through the same strategies (a
neural ensemble of tiny real torch models, RSI+MACD, a 1h/4h confluence, an MA cross):
one runs straight through, the other stops mid-way and starts again on its store.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from bot.config.load import load_settings
from bot.app.daemon import run_daemon
from strategies.features.compute import DEFAULT_SPEC
from strategies.models.spec import ModelSpec
from strategies.models.zoo import build_model
from strategies.models.registry import model_dir, save_model

START, RESTART, END = "2021-01-01", "2021-01-20", "2021-02-05"

CONFIG = """
mode = "paper"

[feed]
source = "replay"
replay_speed = 0

[backtest]
symbols = ["BTC/USDT"]
timeframe = "1h"
start = {start}
end = {end}

[health]
enabled = false

[daemon]
flush_interval_s = 0.2

[store]
path = "{store}"

[data]
dir = "{data}"

# every strategy sizes its entries to 0: nothing trades, so only the strategies' state differs
[[strategies]]
name = "ens"
kind = "neural"
params = {{ models = ["a", "b"], models_dir = "{models}", vote_k = 1, threshold = 0.5, explain = "none", act_strength = 100.0 }}

[[strategies]]
name = "rsi"
kind = "rsi_macd"
params = {{ size_pct = 0.0 }}

[[strategies]]
name = "conf"
kind = "confluence"
params = {{ members = [ {{ timeframe = "1h", kind = "ma_crossover", params = {{ fast = 5, slow = 20, size_pct = 0.0 }} }}, {{ timeframe = "4h", kind = "rsi_macd", params = {{ size_pct = 0.0 }} }} ] }}

[[strategies]]
name = "ma"
kind = "ma_crossover"
params = {{ fast = 10, slow = 30, size_pct = 0.0 }}
"""


def tiny_models(models: Path) -> None:
    for seed, name in enumerate(("a", "b")):
        torch.manual_seed(seed)
        spec = ModelSpec(name=name, kind="lstm", window=24, hidden=(8,), dense=(8,))
        save_model(build_model(spec, DEFAULT_SPEC.n_features), model_dir(models, "BTC/USDT", "1h", name),
                   DEFAULT_SPEC)


def signals(store: Path, since_ms: int) -> dict[tuple[str, int], dict[str, Any]]:
    with sqlite3.connect(store) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM signals WHERE ts > ? ORDER BY ts, strategy", (since_ms,)).fetchall()
    return {(r["strategy"], r["ts"]): dict(r) for r in rows}


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal signals: the same decision, its numbers equal to 1e-9 (float state settles to that)."""
    for key in ("direction", "size_pct", "reason", "votes_json", "risk_level", "horizon"):
        if a[key] != b[key]:
            return False
    for key in ("strength", "probability", "confidence_low", "confidence_high"):
        x, y = a[key], b[key]
        if (x is None) != (y is None) or (x is not None and not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)):
            return False
    return True


@pytest.mark.slow
async def test_a_restarted_daemon_signals_like_one_that_never_stopped(
        tmp_path: Path, data_dir: Path, write_config: Callable[..., Path]) -> None:
    models = tmp_path / "models"
    tiny_models(models)

    def settings(store: Path, end: str) -> Any:
        path = tmp_path / f"{store.stem}-{end}.toml"
        path.write_text(CONFIG.format(start=START, end=end, store=store, data=data_dir, models=models))
        return load_settings(path)

    straight, restarted = tmp_path / "straight.sqlite", tmp_path / "restarted.sqlite"
    await run_daemon(settings(straight, END), "straight")
    first = await run_daemon(settings(restarted, RESTART), "before")
    second = await run_daemon(settings(restarted, END), "after")
    assert first["candles"] > 400 and second["candles"] > 300, (first["candles"], second["candles"])

    cut = int(first["last_ts"]) + 3_600_000  # the close of the last bar before the restart
    want, got = signals(straight, cut), signals(restarted, cut)
    assert want, "the straight run signalled nothing after the restart point"
    per_strategy = {name: [k for k in want if k[0] == name] for name in ("ens", "rsi", "conf", "ma")}
    assert all(per_strategy.values()), {n: len(v) for n, v in per_strategy.items()}
    missing = sorted(set(want) - set(got))
    assert not missing, f"{len(missing)} signals missing after the restart, first {missing[:3]}"
    differ = [k for k in want if not same(want[k], got[k])]
    assert not differ, f"{len(differ)} signals differ, first {differ[0]}: {want[differ[0]]} vs {got[differ[0]]}"
    assert set(got) == set(want)
