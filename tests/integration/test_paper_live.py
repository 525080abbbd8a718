"""Real daemon processes on the real paths, chosen only by configuration.

The loopback Binance exchange runs in this test process (its own loop, in a thread)
replaying real BTC/USDT hourly candles at one bar every ~60 ms; the daemon is
``python -m bot run --config ... --json`` and reaches it through the real ccxt /
ccxt.pro clients. Paper mode walks the paper book; sandbox mode places real orders,
and after SIGTERM the exchange's orders and balances must match SQLite.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app.demo_live import LoopbackExchange, replay_settings
from tests.paths import REPO

WAIT_S = 60.0  # ceilings on a loaded 2-core machine; never a pass/fail timing
START_MS = 1_609_459_200_000  # 2021-01-01
BAR_MS = 60.0

CONFIG = """
mode = "{mode}"

[exchange]
http_url = "{http}"
ws_url = "{ws}"

[feed]
source = "exchange"

[risk]
min_strength = 0.0
max_orders_per_minute = 1000

[health]
enabled = false

[daemon]
shutdown = "cancel_orders"
check_clock_skew = false
flush_interval_s = 0.2
heartbeat_s = 0.5

[[strategies]]
name = "fast_ma"
kind = "ma_crossover"
symbols = ["BTC/USDT"]
timeframe = "1h"
params = {{ fast = 2, slow = 5, size_pct = 5.0 }}
"""


@pytest.fixture
def exchange(data_dir: Path) -> Iterator[LoopbackExchange]:
    with LoopbackExchange(replay_settings(data_dir, START_MS, BAR_MS)) as ex:
        yield ex


def rows(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError:  # schema not created yet
            return []


def wait_for(what: str, check: Callable[[], Any], proc: subprocess.Popen[str]) -> Any:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"daemon exited ({proc.returncode}) waiting for {what}:\n{proc.stderr.read()}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def start_daemon(write_config: Callable[..., Path], tmp: Path, ex: LoopbackExchange,
                 mode: str) -> subprocess.Popen[str]:
    config = write_config(CONFIG.format(mode=mode, http=ex.http_url, ws=ex.ws_url))
    env = {**os.environ, "PYTHONPATH": str(REPO), "NEURALBOT_LOGGING__FORMAT": "json",
           "NEURALBOT_API_KEY": "sim-key", "NEURALBOT_API_SECRET": "sim-secret"}
    return subprocess.Popen([sys.executable, "-m", "bot", "run", "--config", str(config), "--json"],
                            cwd=tmp, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def stop_daemon(proc: subprocess.Popen[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 0, err
    logs = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return json.loads(out.strip().splitlines()[-1]), logs


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_paper_mode_with_exchange_feed_trades_on_the_paper_book(
    write_config: Callable[..., Path], tmp_path: Path, exchange: LoopbackExchange,
    procs: list[subprocess.Popen[str]],
) -> None:
    proc = start_daemon(write_config, tmp_path, exchange, "paper")
    procs.append(proc)
    db = tmp_path / "bot.sqlite"
    wait_for("paper fills", lambda: len(rows(db, "SELECT * FROM fills")) >= 4, proc)
    summary, logs = stop_daemon(proc)

    started = [e for e in logs if e["event"] == "daemon_started"]
    assert len(started) == 1
    assert started[0]["mode"] == "paper" and started[0]["feed"] == "exchange"
    assert started[0]["executor"] == "paper_book" and started[0]["symbols"] == ["BTC/USDT"]
    assert started[0]["strategies"] == ["fast_ma"]
    assert summary["stop_reason"] == "signal" and summary["fills"] >= 4
    fills = rows(db, "SELECT order_id, side, amount, price FROM fills")
    assert len(fills) == summary["fills"]
    candles = rows(db, "SELECT ts FROM candles ORDER BY ts")
    assert len(candles) == summary["candles"] and candles[0][0] >= START_MS
    ts = [c[0] for c in candles]
    assert ts == sorted(set(ts))  # every closed bar once, in order
    # paper: nothing reached the exchange
    assert exchange.call(lambda sim: len(sim.matcher.orders)) == 0
    assert not rows(db, "SELECT * FROM exchange_orders")


def test_sandbox_mode_places_real_orders_and_matches_the_exchange_after_sigterm(
    write_config: Callable[..., Path], tmp_path: Path, exchange: LoopbackExchange,
    procs: list[subprocess.Popen[str]],
) -> None:
    proc = start_daemon(write_config, tmp_path, exchange, "sandbox")
    procs.append(proc)
    wait_for("orders at the exchange", lambda: exchange.call(lambda sim: len(sim.matcher.orders)) >= 4, proc)
    summary, logs = stop_daemon(proc)

    started = next(e for e in logs if e["event"] == "daemon_started")
    assert started["mode"] == "sandbox" and started["executor"] == "exchange"
    assert started["reconcile"]["mismatches"] == []
    events = [e["event"] for e in logs]
    assert events.index("stops_rearmed") < events.index("reconciled") < events.index("daemon_started")

    db = tmp_path / "bot.sqlite"
    sim_orders = exchange.call(lambda sim: {o.client_id: (o.side.lower(), o.status, o.executed)
                                            for o in sim.matcher.orders.values()})
    stored = {cid: (side, state, filled) for cid, side, state, filled
              in rows(db, "SELECT client_order_id, side, state, filled FROM exchange_orders")}
    assert set(sim_orders) == set(stored) and len(stored) >= 4
    status = {"FILLED": "filled", "CANCELED": "canceled", "EXPIRED": "expired", "REJECTED": "rejected"}
    for cid, (side, st, executed) in sim_orders.items():
        assert stored[cid][0] == side
        assert stored[cid][1] == status.get(st, stored[cid][1]), (cid, st, stored[cid])
        assert stored[cid][2] == pytest.approx(executed, rel=1e-9, abs=1e-12)
    assert summary["orders"] == len(stored)
    # every exchange trade is a stored fill
    sim_trades = exchange.call(lambda sim: len(sim.matcher.trades))
    assert len(rows(db, "SELECT * FROM fills")) == sim_trades

    # balances: BTC held == the stored position; USDT == the cash of the last equity point
    balances = exchange.call(lambda sim: {a: sim.matcher.free.get(a, 0.0) + sim.matcher.locked.get(a, 0.0)
                                          for a in ("BTC", "USDT")})
    held = sum(r[0] for r in rows(db, "SELECT amount FROM positions WHERE symbol = 'BTC/USDT'"))
    # exits round down to the lot step and fees come off the base: a few satoshi of dust may stay
    assert balances["BTC"] == pytest.approx(held, abs=1e-4)  # under ten 0.00001 steps
    cash = rows(db, "SELECT cash FROM equity ORDER BY ts DESC LIMIT 1")[0][0]
    assert balances["USDT"] == pytest.approx(cash, abs=0.01)
    assert exchange.call(lambda sim: len(sim.matcher.open_orders(None))) == 0  # cancel_orders

    # and the project's own reconciliation, run afresh against the exchange, finds nothing to fix
    report = asyncio.run(reconcile_again(exchange, db))
    assert report.mismatches == [] and report.recovered_fills == 0


async def reconcile_again(ex: LoopbackExchange, db: Path) -> Any:
    from bot.core.clock import LiveClock
    from bot.config.settings import Settings
    from bot.kernel.kernel import Kernel
    from bot.store.store import Store

    kernel = Kernel(Settings(mode="sandbox", api_key="sim-key", api_secret="sim-secret", feed={"source": "exchange"},
                             exchange={"http_url": ex.http_url}))
    client = kernel.client()
    store = await Store.open(db, portfolio="default")
    try:
        built = await kernel.exchange_engine(client, store, LiveClock(), [], ["BTC/USDT"])
        return built.report
    finally:
        await store.close()
        await client.close()


def manual_orders(ex: LoopbackExchange) -> list[str]:
    """What a person does on the same account: a market buy and a resting limit buy far below."""
    from bot.sim.ccxt_config import make_ccxt_binance

    async def place() -> list[str]:
        client = make_ccxt_binance(ex.http_url, api_key="sim-key", secret="sim-secret", pro=False)
        try:
            await client.load_markets()
            a = await client.create_order("BTC/USDT", "market", "buy", 0.002, None, {"newClientOrderId": "manual-1"})
            b = await client.create_order("BTC/USDT", "limit", "buy", 0.01, 1_000.0, {"newClientOrderId": "manual-2"})  # 10 USDT: above min notional
            return [a["clientOrderId"], b["clientOrderId"]]
        finally:
            await client.close()

    return asyncio.run(place())


@pytest.mark.slow
def test_kill_9_of_the_real_daemon_with_exchange_stops_a_manual_trade_and_a_second_daemon(
    write_config: Callable[..., Path], tmp_path: Path, exchange: LoopbackExchange,
    procs: list[subprocess.Popen[str]],
) -> None:
    db = tmp_path / "bot.sqlite"
    body = CONFIG.format(mode="sandbox", http=exchange.http_url, ws=exchange.ws_url).replace(
        "[feed]", "exchange_stops = true\n\n[feed]", 1)
    config = write_config(body)
    env = {**os.environ, "PYTHONPATH": str(REPO), "NEURALBOT_LOGGING__FORMAT": "json",
           "NEURALBOT_API_KEY": "sim-key", "NEURALBOT_API_SECRET": "sim-secret"}
    cmd = [sys.executable, "-m", "bot", "run", "--config", str(config), "--json"]

    def start() -> subprocess.Popen[str]:
        p = subprocess.Popen(cmd, cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        procs.append(p)
        return p

    first = start()
    wait_for("an exchange-side stop resting", lambda: exchange.call(
        lambda sim: [o for o in sim.matcher.open_orders(None) if o.is_stop]), first)
    manual = manual_orders(exchange)

    second = start()  # same store, same portfolio: refused while the first one lives
    _, err = second.communicate(timeout=WAIT_S)
    assert second.returncode == 2 and "already runs" in err and f"pid {first.pid}" in err, err

    first.send_signal(signal.SIGKILL)
    first.wait()
    runs_before = len(rows(db, "SELECT run_id FROM runs"))
    restarted = start()
    wait_for("the restarted daemon trading", lambda: len(rows(db, "SELECT run_id FROM runs")) > runs_before
             and rows(db, "SELECT COUNT(*) FROM candles")[0][0] > 0, restarted)
    time.sleep(1.0)  # a few bars of the restarted daemon
    _, logs = stop_daemon(restarted)
    events = [e["event"] for e in logs]
    assert "reconciled" in events and "stops_rearmed" in events

    sim_orders = exchange.call(lambda sim: [(o.client_id, o.status, o.executed) for o in sim.matcher.orders.values()])
    ours = {cid for cid, *_ in sim_orders if cid not in manual}
    assert len([c for c, *_ in sim_orders]) == len({c for c, *_ in sim_orders})  # no client order id twice
    stored = dict(rows(db, "SELECT client_order_id, state FROM exchange_orders"))
    # every order of ours known, none of the person's; what the bot stored beyond the exchange's orders
    # the exchange refused (a stop re-armed below a price that has fallen through it meanwhile)
    assert ours <= stored.keys() and not set(manual) & stored.keys()
    assert all(stored[cid] == "rejected" for cid in stored.keys() - ours), stored
    assert {cid: st for cid, st, _ in sim_orders}["manual-2"] == "NEW"  # the person's resting order untouched
    our_trades = exchange.call(lambda sim: sum(1 for o in sim.matcher.orders.values()
                                               if o.client_id not in manual for _ in o.fills))
    assert len(rows(db, "SELECT * FROM fills")) == our_trades  # no fill of ours lost, none invented
