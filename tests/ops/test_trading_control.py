"""Operator control: ``neuralbot resume`` (stored, refused while the cause persists), ``halt --flatten``
in paper, ``status`` without keys, ``/health`` 503 when degraded (halt at the exchange: test_execution_halt)."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bot.cli.parser import main
from bot.core.events import EquitySnapshot
from bot.ops.health import HealthServer, OpsMetrics
from bot.config.ops import HealthConfig
from bot.store.store import Store
from risk.breakers import BreakerMemory
from tests.paths import REPO
from tests.app.test_daemon import Daemon, get, wait_for

TS = 1_700_000_000_000


async def seed(db: Path, equity: float, state: tuple[str, str] | None) -> None:
    store = await Store.open(db, "default")
    store.record(EquitySnapshot(TS, 2_000.0, equity, equity - 2_000.0, 0.0))
    store.record_breakers(BreakerMemory(TS // 86_400_000, 10_000.0, 10_000.0, None), TS)
    if state is not None:
        await store.set_trading_state(*state, TS)
    await store.close()


async def stored(db: Path) -> tuple[tuple[str, str] | None, list[dict[str, Any]]]:
    store = await Store.open(db, "default")
    try:
        return await store.load_trading_state(), await store.operator_actions()
    finally:
        await store.close()


def test_resume_is_refused_while_the_drawdown_persists_then_stored_with_who_and_why(
        write_config: Callable[..., Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config("[risk]\nmax_drawdown_pct = 15.0\n")
    db = tmp_path / "bot.sqlite"
    reason = "drawdown 20.00% from peak 10000.00 reached the limit 15.00%"
    asyncio.run(seed(db, 8_000.0, ("halted", reason)))

    assert main(["resume", "--config", str(config), "--why", "looked at it", "--who", "ann"]) == 1
    err = capsys.readouterr().err
    assert "resume refused" in err and "drawdown 20.00%" in err and "risk.max_drawdown_pct" in err
    state, actions = asyncio.run(stored(db))
    assert state is not None and state[0] == "halted" and actions == []  # a refusal changes nothing

    asyncio.run(seed(db, 9_000.0, None))  # equity recovered within the limit (10% from the peak)
    assert main(["resume", "--config", str(config), "--why", "stop was a bad tick", "--who", "ann"]) == 0
    state, actions = asyncio.run(stored(db))
    assert state == ("active", "operator resume by ann: stop was a bad tick")
    assert [(a["who"], a["action"], a["why"]) for a in actions] == [("ann", "resume", "stop was a bad tick")]
    assert actions[0]["ts"] > TS

    assert main(["resume", "--config", str(config), "--why", "again"]) == 1  # nothing halted now
    assert "not halted" in capsys.readouterr().err


def test_status_reads_a_sandbox_store_without_api_keys(write_config: Callable[..., Path], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("NEURALBOT_API_KEY", "NEURALBOT_API_SECRET", "NEURALBOT_SECRETS_DIR"):
        monkeypatch.delenv(key, raising=False)
    config = write_config('mode = "sandbox"\n\n[feed]\nsource = "exchange"\n')
    asyncio.run(seed(tmp_path / "bot.sqlite", 9_000.0, ("halted", "operator halt")))
    before = (tmp_path / "bot.sqlite").stat().st_mtime_ns
    out = subprocess.run([sys.executable, "-m", "bot", "status", "--config", str(config), "--json"],
                         cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    st = json.loads(out.stdout)
    assert st["equity"] == 9_000.0 and st["trading_state"] == {"state": "halted", "reason": "operator halt"}
    assert (tmp_path / "bot.sqlite").stat().st_mtime_ns == before  # read-only


async def test_health_answers_503_when_degraded() -> None:
    body = {"status": "degraded", "problems": ["feed ohlcv:BTC/USDT:1h silent for 12 s"]}
    server = HealthServer(HealthConfig(port=0), OpsMetrics(), lambda: body)
    port = await server.start()
    try:
        status, text = await asyncio.to_thread(get, f"http://127.0.0.1:{port}/health")
        assert status == 503 and json.loads(text)["problems"] == body["problems"]
        body["status"] = "ok"
        assert (await asyncio.to_thread(get, f"http://127.0.0.1:{port}/health"))[0] == 200
    finally:
        await server.stop()


def test_paper_halt_flatten_closes_the_daemons_positions_and_resume_reaches_it(
        write_config: Callable[..., Path], tmp_path: Path) -> None:
    d = Daemon(write_config, tmp_path)
    config = d.config(speed=15, min_strength=0.0, risk="stop_loss_pct = 50.0\ntake_profit_pct = 1000.0",
                      extra='[[strategies]]\nname = "hold"\nkind = "buy_and_hold"\n')
    try:
        d.start(config)
        wait_for("an open position", lambda: d.health()["positions"], d.proc)
        run = lambda *a: subprocess.run([sys.executable, "-m", "bot", *a, "--config", str(config)],  # noqa: E731
                                        cwd=tmp_path, capture_output=True, text=True, timeout=120)
        out = run("halt", "--flatten", "--why", "drill")
        assert out.returncode == 0, out.stderr
        assert f"the running daemon (pid {d.proc.pid}) closes every open position" in out.stdout, out.stdout  # type: ignore[union-attr]
        h = wait_for("flat and halted", lambda: (h := d.health())["trading_state"] == "halted"
                     and not h["positions"] and h, d.proc)
        assert "operator halt" in h["trading_state_reason"]
        out = run("resume", "--why", "drill over")
        assert out.returncode == 0, out.stderr
        wait_for("active again", lambda: d.health()["trading_state"] == "active", d.proc)
        d.signal(signal.SIGTERM)
        assert d.wait()[0] == 0
    finally:
        d.kill()
    state, actions = asyncio.run(stored(tmp_path / "bot.sqlite"))
    assert [(a["action"], a["why"], a["done_ms"] is not None) for a in actions] == [
        ("halt", "drill", True), ("resume", "drill over", True)]
    with sqlite3.connect(tmp_path / "bot.sqlite") as db:  # the operator's flatten sold, nothing else did
        sells = db.execute("SELECT intent_id FROM orders WHERE side = 'sell'").fetchall()
    assert len(sells) == 1 and sells[0][0].startswith("operator-"), sells
