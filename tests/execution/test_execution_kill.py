"""kill -9 soak: a sandbox daemon trading against the loopback exchange, killed at random.

Each cycle forks a pre-imported runner (``sandbox_runner --fork-server``; every child is
its own process), lets it trade for a random 0.4-1.6 s (start-up and reconciliation
included, so kills land everywhere: mid-request, mid-write, mid-reconcile) and
``SIGKILL``s it. Order requests time out now and then after the exchange placed them.
Afterwards a final run reconciles, and the exchange is compared with SQLite:
no client order id twice, every exchange order known, no fill missing, positions
equal to balances, a stop on every open position, no unexplained mismatch.
``NEURALBOT_KILL_CYCLES`` sets the number of kills (default 50).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
from collections import Counter
from pathlib import Path

import pytest

from bot.sim import FaultSettings, SimExchange, SimSettings
from bot.sim.filters import filters_for
from bot.store.store import Store
from tests.paths import REPO

SYM = "BTC/USDT"
CYCLES = int(os.environ.get("NEURALBOT_KILL_CYCLES", "50"))


async def wait_exit(pid: int, limit_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while loop.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"runner {pid} did not finish")


@pytest.mark.slow
def test_kill_9_never_duplicates_orders_or_loses_fills(data_dir: Path, tmp_path: Path) -> None:
    db = tmp_path / "sandbox.sqlite"
    settings = SimSettings(
        data_dir=data_dir, symbols=(SYM,), timeframes=("1h",), book_replay=False, speed=7200.0,
        start_ms=1_600_000_000_000,
        faults=FaultSettings(order_timeout_every_n=5, order_timeout_hang_s=0.6),
    )

    async def go() -> tuple[dict, SimExchange]:
        async with SimExchange(settings) as sim:
            server = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.app.sandbox_runner", "--fork-server",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=REPO,
            )
            assert server.stdin is not None and server.stdout is not None
            rng = random.Random(20240808)

            async def spawn(i: int, *extra: str) -> int:
                argv = ["--db", str(db), "--http", sim.http_url, "--timeout-ms", "300",
                        "--log", str(tmp_path / f"run{i:03d}.log"), *extra]
                server.stdin.write((json.dumps(argv) + "\n").encode())  # type: ignore[union-attr]
                await server.stdin.drain()  # type: ignore[union-attr]
                return int(await server.stdout.readline())  # type: ignore[union-attr]

            try:
                for i in range(CYCLES):
                    pid = await spawn(i)
                    await asyncio.sleep(rng.uniform(0.4, 1.6))
                    os.kill(pid, signal.SIGKILL)
                    await wait_exit(pid)
                sim.set_faults(FaultSettings())
                pid = await spawn(CYCLES, "--reconcile-only")
                await wait_exit(pid)
            finally:
                server.stdin.close()
                await server.wait()
            final = tmp_path / f"run{CYCLES:03d}.log"
            lines = [json.loads(x) for x in final.read_text().splitlines() if x.startswith("{")]
            report = next(x["reconciled"] for x in lines if "reconciled" in x)
            return report, sim

    report, sim = asyncio.run(go())
    matcher = sim.matcher
    orders = list(matcher.orders.values())
    assert len(orders) >= CYCLES // 3, "the daemon hardly traded; the soak proves nothing"

    async def stored() -> tuple[list[dict], set[str], list[dict]]:
        store = await Store.open(db, "sandbox")
        try:
            return await store.load_exchange_orders(), await store.fill_ids(), await store.fetch("positions")
        finally:
            await store.close()

    local_orders, fill_ids, positions = asyncio.run(stored())
    # zero duplicate orders at the exchange; each one is an order we wrote down first
    per_cid = Counter(o.client_id for o in orders)
    assert max(per_cid.values()) == 1, [c for c, n in per_cid.items() if n > 1]
    assert set(per_cid) <= {r["client_order_id"] for r in local_orders}
    # zero fills missing from SQLite (and none invented)
    exchange_fills = {f"BTCUSDT-{t['id']}" for t in matcher.trades}
    assert exchange_fills == fill_ids
    # positions equal the exchange's balances (within untradeable dust: under Binance's
    # 5 USDT minimum notional a remainder can be neither sold nor protected)
    base = sum(float(b["free"]) + float(b["locked"]) for b in matcher.balances() if b["asset"] == "BTC")
    held = {p["symbol"]: p for p in positions}.get(SYM)
    amount = held["amount"] if held else 0.0
    price = float(matcher.trades[-1]["price"])
    min_notional = float(filters_for("BTCUSDT").min_notional)
    assert abs(base - amount) <= min_notional / price
    # every open position has its stop; the final reconciliation explained everything
    if amount * price >= min_notional:
        assert held is not None and held["stop_price"] is not None and held["stop_price"] > 0
    assert report["mismatches"] == [] and report["state"] == "active"
    assert report["unprotected"] == []
    kills_with_open_orders = sum(1 for o in orders if o.status in ("NEW", "PARTIALLY_FILLED"))
    assert kills_with_open_orders == 0  # market orders only: nothing left resting
