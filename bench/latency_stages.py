"""Where a live bar's candle-close -> order time goes: ``bench_latency`` with per-bar stage stamps.

Runs ``bench/bench_latency.py`` (same arguments) with probes on the bot's side, all stamped
with ``perf_counter_ns`` (CLOCK_MONOTONIC, comparable with the exchange process's stamps):
the closing kline reaching ccxt's websocket client, every HTTP request ccxt makes (start,
end, path), the feed queueing the candle, ``Engine.on_event``, the strategy's ``evaluate`` and
``explain``, ``Store.flush`` and the writer thread's transactions (``txn``; a small waited-for flush
is written inside ``flush`` itself), the executor's ``submit``,
and every garbage collection (``gc.callbacks``). Each measured bar's stages are cut at the
closing push (t0) and the order's arrival (t1); what ran on the loop just before t0 (the
previous bar's tail) is reported too. Prints the bench's own table, then the mean stage
breakdown of the bars at or below the median and of the slowest 5 %, then the slowest bars.

     .venv/bin/python bench/latency_stages.py --bars 100
"""

from __future__ import annotations

import gc
import json
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench_latency as bl  # noqa: E402

EVENTS: list[tuple[int, str, Any]] = []  # (ns, what, detail) in stamp order per thread
_now = time.perf_counter_ns


def stamp(what: str, detail: Any = None) -> None:
    EVENTS.append((_now(), what, detail))


def wrap_async(owner: Any, name: str, label: str, detail: Any = None) -> None:
    original = getattr(owner, name)

    async def probe(*args: Any, **kwargs: Any) -> Any:
        d = detail(*args, **kwargs) if callable(detail) else detail
        stamp(f"{label}>", d)
        try:
            return await original(*args, **kwargs)
        finally:
            stamp(f"{label}<", d)

    setattr(owner, name, probe)


def wrap_sync(owner: Any, name: str, label: str) -> None:
    original = getattr(owner, name)

    def probe(*args: Any, **kwargs: Any) -> Any:
        stamp(f"{label}>", threading.current_thread().name)
        try:
            return original(*args, **kwargs)
        finally:
            stamp(f"{label}<", threading.current_thread().name)

    setattr(owner, name, probe)


def install() -> None:
    from ccxt.async_support.base.exchange import Exchange
    from ccxt.async_support.base.ws.client import Client

    from bot.engine.engine import Engine
    from bot.execution.exchange import ExchangeExecutor
    from bot.feeds.live import LiveFeed
    from bot.store.store import Store
    from bot.store.writer import Writer

    handle = Client.handle_message

    def handle_message(self: Any, message: Any) -> Any:
        data = getattr(message, "data", None)
        if isinstance(data, str) and '"x":true' in data:
            stamp("ws_close", json.loads(data).get("k", {}).get("t"))
        return handle(self, message)

    Client.handle_message = handle_message  # type: ignore[method-assign]
    wrap_async(Exchange, "fetch", "http", lambda self, url, method="GET", *a, **k: url.split("?")[0].rsplit("/", 1)[-1])
    emit = LiveFeed._emit

    async def _emit(self: Any, event: Any, stats: Any) -> None:
        stamp("emit", getattr(event, "ts", None))
        await emit(self, event, stats)

    LiveFeed._emit = _emit  # type: ignore[method-assign]
    wrap_async(Engine, "on_event", "on_event")
    wrap_async(Store, "flush", "flush")
    wrap_async(ExchangeExecutor, "submit", "submit")
    wrap_sync(Writer, "_transaction", "txn")
    wrap_sync(bl.Alternating, "evaluate", "evaluate")
    wrap_sync(bl.Alternating, "explain", "explain")
    gc.callbacks.append(lambda phase, info: stamp(f"gc{'>' if phase == 'start' else '<'}", info["generation"]))


CAPTURED: list[tuple[str, dict[int, tuple[int, int]]]] = []  # phase -> bar -> (t0, t1)


def capture() -> None:
    original = bl.phase_latencies

    def phase_latencies(sent: dict[str, int], closes: Any, orders: dict[str, int], since_ns: int) -> list[float]:
        bars = {}
        for cid, bar in sent.items():
            got = orders.get(cid)
            pushes = [t for t in closes.get(("BTCUSDT", bar), ()) if since_ns <= t <= (got or 0)]
            if got is not None and pushes:
                bars[bar] = (max(pushes), got)
        CAPTURED.append(("baseline" if not CAPTURED else "ensemble", bars))
        return original(sent, closes, orders, since_ns)

    bl.phase_latencies = phase_latencies


def spans(events: list[tuple[int, str, Any]], t0: int, t1: int) -> dict[str, float]:
    """ms of each stage inside [t0, t1] (open/close pairs clipped to the window), plus gaps."""
    out: dict[str, float] = defaultdict(float)
    open_at: dict[tuple[str, Any], int] = {}
    for ns, what, detail in events:
        if what.endswith(">"):
            open_at[(what[:-1], detail)] = ns
        elif what.endswith("<"):
            start = open_at.pop((what[:-1], detail), None)
            if start is None:
                continue
            a, b = max(start, t0), min(ns, t1)
            if b > a:
                key = what[:-1] if what[:-1] != "http" else f"http:{detail}"
                if what[:-1] == "gc":
                    key = f"gc{detail}"
                out[key] += (b - a) / 1e6
                if start < t0:
                    out[f"{key} (begun before t0)"] += (b - a) / 1e6
    return out


def marks(events: list[tuple[int, str, Any]], t0: int, t1: int) -> dict[str, float]:
    """ms after t0 of the first occurrence of each point stamp in [t0, t1]."""
    out: dict[str, float] = {}
    for ns, what, _ in events:
        if t0 <= ns <= t1 and not what.endswith(("<", ">")) and what not in out:
            out[what] = (ns - t0) / 1e6
        elif t0 <= ns <= t1 and what.endswith(">") and what[:-1] in ("on_event", "evaluate", "submit", "txn",
                                                                       "explain") and what not in out:
            out[what] = (ns - t0) / 1e6
    return out


def main() -> int:
    install()
    capture()
    rc = bl.main()
    events = sorted(EVENTS)
    for phase, bars in CAPTURED:
        rows = []
        for bar, (t0, t1) in sorted(bars.items()):
            lat = (t1 - t0) / 1e6
            rows.append((lat, bar, spans(events, t0, t1), marks(events, t0, t1),
                         spans(events, t0 - 50_000_000, t0)))
        if not rows:
            continue
        lats = np.array([r[0] for r in rows])
        p50, p95 = np.percentile(lats, 50), np.percentile(lats, 95)
        print(f"\n== {phase}: {len(rows)} bars, latency p50 {p50:.2f} ms, p95 {p95:.2f} ms, max {lats.max():.2f} ms")
        for label, sel in (("bars <= p50", [r for r in rows if r[0] <= p50]),
                           ("bars >= p95", [r for r in rows if r[0] >= p95])):
            keys = sorted({k for r in sel for k in r[2]})
            mean_lat = float(np.mean([r[0] for r in sel]))
            print(f"-- {label} ({len(sel)} bars, mean latency {mean_lat:.2f} ms): mean ms per stage inside t0..t1")
            for k in keys:
                v = [r[2].get(k, 0.0) for r in sel]
                print(f"   {k:<40}{np.mean(v):8.2f}  (in {sum(1 for x in v if x > 0)} bars)")
            mk = sorted({k for r in sel for k in r[3]})
            print("   first stamp after t0 (mean ms): " + ", ".join(
                f"{k} {np.mean([r[3][k] for r in sel if k in r[3]]):.2f}" for k in sorted(
                    mk, key=lambda k: np.mean([r[3][k] for r in sel if k in r[3]]))))
            pre = sorted({k for r in sel for k in r[4]})
            print("   busy in the 50 ms before t0 (mean ms): " + ", ".join(
                f"{k} {np.mean([r[4].get(k, 0.0) for r in sel]):.2f}" for k in pre if "begun" not in k))
        print("-- slowest 5 bars:")
        for lat, bar, sp, mk, pre in sorted(rows, key=lambda r: r[0])[-5:]:
            print(f"   {lat:7.2f} ms bar {bar}: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(sp.items())))
            print("          marks: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(mk.items(), key=lambda kv: kv[1])))
            print("          before t0: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(pre.items())))
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
