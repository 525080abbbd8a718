"""A real daemon process: /health and /metrics, SIGHUP reload, SIGTERM shutdown, restart resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.paths import REPO

WAIT_S = 60.0  # generous ceilings for a loaded 2-core machine; never a pass/fail timing


def daemon_cmd(config: Path) -> list[str]:
    return [sys.executable, "-m", "bot", "run", "--config", str(config), "--json"]


def wait_for(what: str, check: Callable[[], Any], proc: subprocess.Popen[str] | None = None) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"daemon exited ({proc.returncode}) while waiting for {what}:\n"
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


CONFIG = """
[feed]
source = "replay"
replay_speed = {speed}

[backtest]
symbols = ["BTC/USDT"]
timeframe = "1h"
start = 2021-01-01
end = {end}

[risk]
min_strength = {min_strength}
{risk}

[health]
port = 0
port_file = "{port_file}"

[daemon]
shutdown = "cancel_orders"
flush_interval_s = 0.2
heartbeat_s = 0.5
"""


class Daemon:
    def __init__(self, write_config: Callable[..., Path], tmp: Path) -> None:
        self.write_config = write_config
        self.tmp = tmp
        self.port_file = tmp / "health.port"
        self.proc: subprocess.Popen[str] | None = None

    def config(self, speed: float = 40, end: str = "2021-06-01", min_strength: float = 60.0,
               extra: str = "", risk: str = "") -> Path:
        body = CONFIG.format(speed=speed, end=end, min_strength=min_strength, port_file=self.port_file,
                             risk=risk)
        return self.write_config(body + extra, name=f"{self.port_file.stem}.toml")

    def start_nowait(self, config: Path) -> None:
        self.port_file.unlink(missing_ok=True)
        env = {**os.environ, "PYTHONPATH": str(REPO), "NEURALBOT_LOGGING__FORMAT": "json"}
        self.proc = subprocess.Popen(daemon_cmd(config), cwd=self.tmp, env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def start(self, config: Path) -> None:
        self.start_nowait(config)
        wait_for("health port", lambda: self.port_file.exists() and self.port_file.read_text().strip(),
                 self.proc)

    @property
    def base(self) -> str:
        return "http://" + self.port_file.read_text().strip()

    def health(self) -> dict[str, Any]:
        status, body = get(self.base + "/health")
        h = json.loads(body)
        assert status == (200 if h["status"] == "ok" else 503), body
        return h

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self) -> tuple[int, str, str]:
        assert self.proc is not None
        out, err = self.proc.communicate(timeout=WAIT_S)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def daemon(write_config: Callable[..., Path], tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(write_config, tmp_path)
    yield d
    d.kill()


def test_health_metrics_sighup_and_sigterm(daemon: Daemon) -> None:
    config = daemon.config()
    daemon.start(config)
    h = wait_for("a few candles", lambda: (h := daemon.health())["candles"] >= 50 and h)
    assert h["status"] in ("ok", "degraded") and h["trading_state"] == "active"
    assert h["mode"] == "paper" and h["pid"] == daemon.proc.pid  # type: ignore[union-attr]
    assert set(h["feeds"]) == {"ohlcv:BTC/USDT:1h"}
    assert h["feeds"]["ohlcv:BTC/USDT:1h"]["age_s"] >= 0
    assert {"equity", "cash", "heat", "positions", "models", "events_per_second"} <= set(h)
    assert h["config_generation"] == 1

    status, metrics = get(daemon.base + "/metrics")
    assert status == 200
    for series in ("neuralbot_events_total", "neuralbot_events_per_second", "neuralbot_equity ",
                   "neuralbot_heat ", "neuralbot_candle_to_order_seconds_bucket",
                   "neuralbot_inference_seconds_count", 'neuralbot_trading_state{state="active"} 1.0'):
        assert series in metrics, series

    # SIGHUP with a valid change: applied, generation bumps, daemon keeps trading.
    config.write_text(config.read_text().replace("min_strength = 60.0", "min_strength = 70.0"))
    daemon.signal(signal.SIGHUP)
    h = wait_for("reload", lambda: (h := daemon.health())["config_generation"] == 2 and h)
    assert h["last_reload"]["ok"] is True and h["last_reload"]["restart_required"] == []

    # SIGHUP with an invalid config: rejected, old one kept, still alive.
    config.write_text(config.read_text().replace("min_strength = 70.0", "min_strength = 170.0"))
    daemon.signal(signal.SIGHUP)
    h = wait_for("rejection", lambda: (h := daemon.health())["last_reload"].get("ok") is False and h)
    assert "risk.min_strength" in h["last_reload"]["error"]
    assert h["config_generation"] == 2 and h["status"] in ("ok", "degraded")
    before = h["candles"]
    wait_for("trading continues", lambda: daemon.health()["candles"] > before)

    # a config that is not even TOML is rejected too
    config.write_text("this is [not toml")
    daemon.signal(signal.SIGHUP)
    wait_for("second rejection", lambda: "TOML" in daemon.health()["last_reload"].get("error", ""))

    daemon.signal(signal.SIGTERM)
    rc, out, err = daemon.wait()
    assert rc == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["stop_reason"] == "signal" and summary["shutdown"] == "cancel_orders"
    assert summary["candles"] >= before
    assert not daemon.port_file.exists()  # health server closed
    events = [json.loads(line)["event"] for line in err.splitlines() if line.startswith("{")]
    assert "config_reloaded" in events and events.count("config_reload_rejected") == 2
    assert events[-1] == "daemon_stopped"


def test_restart_after_kill_resumes_from_store(daemon: Daemon, tmp_path: Path) -> None:
    config = daemon.config(speed=60, end="2021-02-01")
    daemon.start(config)
    wait_for("candles persisted", lambda: daemon.health()["candles"] >= 120)
    daemon.proc.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
    daemon.proc.wait()  # type: ignore[union-attr]
    with sqlite3.connect(tmp_path / "bot.sqlite") as db:
        stored_last = db.execute("SELECT MAX(ts) FROM candles").fetchone()[0]
        fills_before = db.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
    assert stored_last is not None

    # second run as fast as possible to the end of January: resumes after the stored candles
    daemon.start(daemon.config(speed=0, end="2021-02-01"))
    rc, out, err = daemon.wait()
    assert rc == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["stop_reason"] == "feed ended"
    assert summary["first_ts"] == stored_last + 3_600_000  # resumes right after the stored candles
    assert summary["last_ts"] == 1612134000000  # 2021-01-31 23:00, the last bar of January
    resumed = [json.loads(line) for line in err.splitlines() if '"daemon_resumed"' in line]
    assert resumed and resumed[0]["resume"]["BTC/USDT"] == stored_last
    with sqlite3.connect(tmp_path / "bot.sqlite") as db:
        n_candles = db.execute("SELECT COUNT(*) FROM candles").fetchone()[0]
        fills_after = db.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
    assert n_candles == 31 * 24  # every January bar stored exactly once across both runs
    assert fills_after >= fills_before
