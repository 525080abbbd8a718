"""Soak: the real daemon against the loopback exchange for N simulated days, faults on.

The exchange runs in its own process (``bench_latency.SimProcess``) replaying 1h
candles of several symbols at ``--speed`` with fault injection (websocket drops,
malformed messages, REST 5xx). The daemon (``bot.app.daemon.Daemon``, paper mode,
exchange feed) runs in this process. Printed table:

* RSS of this process after warm-up (first 20 % of the run) and at the end: growth
  must stay <= 5 %;
* asyncio tasks alive before start and after shutdown (leaks);
* candles processed per symbol vs. the bars the exchange closed in that period, gaps
  and duplicates (every candle processed exactly once);
* reconnects and injected faults.

    .venv/bin/python bench/bench_soak.py --days 30 --speed 20000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from bench_latency import START_MS, TF_MS, SimProcess  # noqa: E402

SYMBOLS = ("BTC/USDT", "ETH/USDT", "ADA/USDT", "BNB/USDT")


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def soak(url: str, days: float, speed: float, tmp: Path) -> dict[str, Any]:
    from bot.app.daemon import Daemon
    from bot.config.load import load_settings

    cfg = tmp / "soak.toml"
    cfg.write_text(f"""
mode = "paper"
[exchange]
http_url = "{url}"
[data]
dir = "{REPO.parent / 'shared' / 'data'}"
[store]
path = "{tmp / 'soak.sqlite'}"
[feed]
source = "exchange"
[backtest]
symbols = {list(SYMBOLS)!r}
timeframe = "1h"
[health]
port = 0
[api]
enabled = false
[logging]
level = "WARNING"
[daemon]
flush_interval_s = 1.0
check_clock_skew = false  # the loopback exchange replays 2021 time
[[strategies]]
name = "ma"
kind = "ma_crossover"
symbols = {list(SYMBOLS)!r}
params = {{ fast = 10, slow = 30 }}
""".replace("'", '"'))
    settings = load_settings(cfg)
    tasks_before = len(asyncio.all_tasks())
    stop = asyncio.Event()
    daemon = Daemon(settings, "soak", stop, cfg)
    run = asyncio.create_task(daemon.run())
    wall = days * 86_400_000 / speed / 1000
    samples: list[tuple[float, int]] = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < wall and not run.done():
        await asyncio.sleep(min(2.0, wall / 50))
        samples.append((time.monotonic() - t0, rss_kb()))
    stop.set()
    summary = await run
    await asyncio.sleep(0.5)
    leaked = [t.get_name() for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    engine = daemon.engine
    assert engine is not None
    per_symbol = {}
    for (sym, _tf), buf in engine.buffers.items():
        per_symbol[sym] = buf
    stats = getattr(daemon.feed, "stats", {})
    return {"summary": summary, "samples": samples, "tasks_before": tasks_before - 1, "leaked": leaked,
            "engine": engine, "feed_stats": {k: vars(v) if hasattr(v, "__dict__") else
                                             {f: getattr(v, f) for f in v.__slots__} for k, v in stats.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=float, default=30.0)
    ap.add_argument("--speed", type=float, default=20_000.0, help="simulated ms per real ms")
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    args = ap.parse_args()
    faults = {"drop_every_n_messages": 400, "malformed_every_n": 333, "http_5xx_every_n": 25}
    sim = SimProcess(args.data_dir, args.speed, SYMBOLS, START_MS, faults)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            res = asyncio.run(soak(sim.url, args.days, args.speed, Path(tmp)))
    finally:
        _, _, counters = sim.finish()
    samples = res["samples"]
    warm = [kb for t, kb in samples if t >= samples[-1][0] * 0.2] or [samples[-1][1]]
    growth = (samples[-1][1] - warm[0]) / warm[0]
    engine = res["engine"]
    s = res["summary"]
    print(f"soak: {args.days:g} simulated days, {len(SYMBOLS)} symbols 1h, speed x{args.speed:g}, faults {faults}")
    print(f"{'metric':<34}{'value':>16}")
    rows = [
        ("RSS after warm-up (MiB)", f"{warm[0] / 1024:.1f}"),
        ("RSS at end (MiB)", f"{samples[-1][1] / 1024:.1f}"),
        ("RSS growth after warm-up", f"{growth:+.2%} ({'ok' if growth <= 0.05 else 'OVER 5%'})"),
        ("asyncio tasks before / leaked", f"{res['tasks_before']} / {len(res['leaked'])}"),
        ("candles processed", f"{s['candles']}"),
        ("candles rejected (dup/out-of-order)", f"{s['rejected_candles']}"),
        ("orders / fills", f"{s['orders']} / {s['fills']}"),
    ]
    for sym in SYMBOLS:
        buf = engine.buffers.get((sym, "1h"))
        if buf is None:
            rows.append((f"{sym} bars", "none"))
            continue
        ts = buf.window().ts
        gaps = int(((ts[1:] - ts[:-1]) != TF_MS).sum()) if len(ts) > 1 else 0
        rows.append((f"{sym} bars / gaps in buffer", f"{len(ts)} / {gaps}"))
    rows.append(("feed reconnects", str(sum(v.get("reconnects", 0) for v in res["feed_stats"].values()))))
    rows.append(("injected faults", ", ".join(f"{k}={v}" for k, v in counters.items() if v)))
    for k, v in rows:
        print(f"{k:<34}{v:>16}" if len(v) <= 16 else f"{k:<34} {v}")
    if res["leaked"]:
        print("leaked tasks:", res["leaked"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
