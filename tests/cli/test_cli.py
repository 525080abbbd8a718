"""The CLI as a user runs it: real subprocesses, real data, real SQLite."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from tests.paths import REPO



def env_without_overrides() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("NEURALBOT_")}


def test_help_lists_commands() -> None:
    proc = subprocess.run([sys.executable, "-m", "bot", "--help"], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert proc.returncode == 0
    assert "backtest" in proc.stdout and "run" in proc.stdout


def test_backtest_example_config_json(tmp_path: Path, data_dir: Path) -> None:
    env = env_without_overrides() | {
        "NEURALBOT_STORE__PATH": str(tmp_path / "bt.sqlite"),
        "NEURALBOT_DATA__DIR": str(data_dir),
    }
    # the example without its neural strategy (its models are trained by `make demo`, not here)
    example = (REPO / "config.example.toml").read_text()
    assert "enabled = true            # the neural strategy" in example
    config = tmp_path / "example.toml"
    config.write_text(example.replace("enabled = true            # the neural strategy", "enabled = false"))
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "backtest", "--config", str(config), "--json",
         "--from", "2020-01-01", "--to", "2020-07-01"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    for key in ("candles", "trades", "final_equity", "total_return", "sharpe", "max_drawdown", "win_rate"):
        assert key in summary
    assert summary["candles"] == 182 * 24  # every hour of 2020-01-01 .. 2020-06-30 is in the source
    with sqlite3.connect(tmp_path / "bt.sqlite") as db:
        (fills,) = db.execute("SELECT COUNT(*) FROM fills WHERE portfolio = ?", (summary["portfolio"],)).fetchone()
    assert fills == summary["fills"] > 0
    # per strategy: the run itself, and the configured strategy and buy-and-hold replayed alone
    per = summary["strategies"]
    assert {"portfolio", "buy_and_hold"} <= set(per) and per["portfolio"]["bars"] == summary["candles"]
    (alone,) = set(per) - {"portfolio", "buy_and_hold"}  # the example's one strategy, replayed alone
    for key in ("trades", "final_equity", "sharpe", "max_drawdown"):
        assert per[alone][key] == per["portfolio"][key]
    assert per["buy_and_hold"]["exposure"] > 0.9  # held all along (sized and stopped by [risk])


def test_daemon_stops_cleanly_on_sigterm(write_config, tmp_path: Path) -> None:
    cfg = write_config(
        '[feed]\nsource = "replay"\nreplay_speed = 400\n\n'
        '[backtest]\nstart = 2019-01-01\n\n[logging]\nformat = "json"\n'
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--config", str(cfg)],
        cwd=REPO, env=env_without_overrides(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    db = tmp_path / "bot.sqlite"
    deadline = time.monotonic() + 60
    rows = 0
    while time.monotonic() < deadline and rows < 200:
        time.sleep(0.5)
        if db.exists():
            try:
                with sqlite3.connect(db) as conn:
                    rows = conn.execute("SELECT COUNT(*) FROM equity").fetchone()[0]
            except sqlite3.OperationalError:
                rows = 0
    assert rows >= 200, "daemon did not make progress"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    events = [line["event"] for line in lines]
    assert "daemon_resumed" in events and "daemon_stopped" in events
    assert all(line.get("mode") == "paper" and line.get("run_id") for line in lines)
    with sqlite3.connect(db) as conn:
        final = conn.execute("SELECT COUNT(*) FROM equity").fetchone()[0]
    assert final >= rows  # state flushed on the way out
