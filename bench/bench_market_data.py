"""Market-data benchmark: book updates/s and candles/s through feed -> Engine, vs baselines.

    .venv/bin/python bench/bench_market_data.py [--data-dir ../shared/data] [--candles 3000]

Baselines are measured in the same run: applying the same recorded diffs to plain dicts
(no sequencing), and the Engine fed by the in-memory ``ReplayFeed``.

The loopback exchange runs in its own process (``multiprocessing``, spawn), so serving
REST/websocket traffic is not billed to the feed: "feed overhead" is the extra wall time
per candle of Engine <- LiveFeed over Engine <- ReplayFeed, measured in the same run.
Book throughput is reported twice: depth diff messages/s and price levels/s.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import structlog

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.core.clock import SimClock  # noqa: E402
from bot.core.events import MarketEvent  # noqa: E402
from bot.sim import SimExchange, SimSettings, make_ccxt_binance  # noqa: E402
from bot.sim.recordings import load_recordings  # noqa: E402
from bot.feeds.live import LiveFeed  # noqa: E402
from bot.feeds.live_settings import LiveFeedSettings  # noqa: E402
from bot.feeds.replay import ReplayFeed  # noqa: E402
from bot.marketdata.orderbook import L2Book  # noqa: E402

START = 1_577_836_800_000
HOUR = 3_600_000


def bench_book(data_dir: Path, passes: int) -> tuple[float, float, int, int]:
    rec = load_recordings(data_dir)["BTCUSDT"]
    snap = rec.lines[rec.snapshot_index or 0].data
    diffs = [ln.data for ln in rec.lines if ln.stream and "@depth" in ln.stream]
    diffs = [d for d in diffs if d["u"] > snap["lastUpdateId"]]
    # baseline: the same level changes into plain dicts, no sequencing, no float parsing
    t0 = time.perf_counter()
    for _ in range(passes):
        bids = {p: q for p, q in snap["bids"]}
        asks = {p: q for p, q in snap["asks"]}
        for d in diffs:
            for p, q in d["b"]:
                bids[p] = q
            for p, q in d["a"]:
                asks[p] = q
    base = len(diffs) * passes / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for _ in range(passes):
        book = L2Book("BTC/USDT")
        book.load_snapshot(snap["lastUpdateId"], snap["bids"], snap["asks"])
        for d in diffs:
            book.apply_diff(d["U"], d["u"], d["b"], d["a"])
        assert book.resyncs == 0
    ours = len(diffs) * passes / (time.perf_counter() - t0)
    levels = sum(len(d["b"]) + len(d["a"]) for d in diffs)
    return ours, base, len(diffs), levels


class _Take:
    """Stop a feed after n events (the live feed never ends by itself)."""

    def __init__(self, feed: LiveFeed, n: int) -> None:
        self.feed, self.n = feed, n

    async def __aiter__(self) -> AsyncIterator[MarketEvent]:
        seen = 0
        async for ev in self.feed:
            yield ev
            seen += 1
            if seen >= self.n:
                return

    async def close(self) -> None:
        await self.feed.close()

    def reconnects_by_stream(self) -> dict[str, int]:
        return self.feed.reconnects_by_stream()


def _engine(store: object) -> object:
    from bot.engine.engine import Engine, EngineSettings
    from bot.execution.paper_book import PaperBookExecutor
    from risk.gate import RiskGate, RiskLimits
    from risk.portfolio import Portfolio

    strategies: list[object] = []
    try:
        from strategies.catalog import build_strategy

        strategies = [build_strategy("ma_crossover", "ma", ("BTC/USDT",), "1h",
                                     {"fast": 10, "slow": 30})]
    except Exception as exc:  # noqa: BLE001 - bench only: fall back to a bare Engine
        print(f"(no strategy in the bench Engine: {exc})")
    return Engine(strategies=strategies, gate=RiskGate(RiskLimits()), executor=PaperBookExecutor(),
                  portfolio=Portfolio(10_000.0), store=store, clock=SimClock(0),
                  settings=EngineSettings())


def _serve(settings: SimSettings, conn: object) -> None:
    """Child process: run the loopback exchange until the parent says stop."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    async def go() -> None:
        async with SimExchange(settings) as sim:
            conn.send((sim.http_url, sim.ws_url, sim.now_ms()))  # type: ignore[attr-defined]
            await asyncio.get_running_loop().run_in_executor(None, conn.recv)  # type: ignore[attr-defined]

    asyncio.run(go())


class SimProcess:
    """The loopback exchange in a separate process (its CPU is not the feed's)."""

    def __init__(self, settings: SimSettings) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(settings, child), daemon=True)

    def __enter__(self) -> tuple[str, str, int]:
        self._proc.start()
        if not self._conn.poll(60):
            raise RuntimeError("the loopback exchange process did not start")
        return self._conn.recv()  # type: ignore[no-any-return]

    def __exit__(self, *exc: object) -> None:
        self._conn.send("stop")
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.terminate()


class StartedClock:
    """The exchange's clock, seen from another process: ``start_ms`` plus elapsed real time."""

    def __init__(self, start_ms: int) -> None:
        self.start_ms, self.t0 = start_ms, time.monotonic()

    def now_ms(self) -> int:
        return self.start_ms + int((time.monotonic() - self.t0) * 1000)


async def bench_feed(data_dir: Path, n: int) -> dict[str, float]:
    from bot.store.store import Store

    out: dict[str, float] = {}
    until = START + n * HOUR
    with tempfile.TemporaryDirectory() as tmp:
        store = await Store.open(Path(tmp) / "b.sqlite")
        replay = ReplayFeed.from_csv(data_dir, "binance", ["BTC/USDT"], "1h", START, until)
        engine = _engine(store)
        t0 = time.perf_counter()
        await engine.run(replay)  # type: ignore[attr-defined]
        out["engine_replay_s"] = time.perf_counter() - t0
        out["n"] = float(len(replay))
        await store.close()
        settings = SimSettings(data_dir=data_dir, speed=1.0, start_ms=until, symbols=("BTC/USDT",),
                               timeframes=("1h",), book_replay=False)
        fs = LiveFeedSettings(since_ms=START, max_clock_skew_ms=None, backfill_limit=1000)
        with SimProcess(settings) as (http_url, ws_url, start_ms):
            clock = StartedClock(start_ms)
            feed = LiveFeed(make_ccxt_binance(http_url, ws_url), fs, clock)
            await feed.start()
            t0 = time.perf_counter()
            got = 0
            async for _ev in _Take(feed, len(replay)).__aiter__():
                got += 1
            out["feed_only_s"] = time.perf_counter() - t0
            await feed.close()
            store = await Store.open(Path(tmp) / "c.sqlite")
            feed = LiveFeed(make_ccxt_binance(http_url, ws_url), fs, clock)
            await feed.start()
            engine = _engine(store)
            t0 = time.perf_counter()
            await engine.run(_Take(feed, len(replay)))  # type: ignore[attr-defined]
            out["engine_live_s"] = time.perf_counter() - t0
            await feed.close()
            await store.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    ap.add_argument("--candles", type=int, default=3000)
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    ours, base, n_diffs, n_levels = bench_book(args.data_dir, args.passes)
    per = n_levels / n_diffs
    f = asyncio.run(bench_feed(args.data_dir, args.candles))
    n = f["n"]
    rows = [
        ("book: depth diff messages applied/s (L2Book)", f"{ours:,.0f}",
         f"{base:,.0f} (plain dict baseline)", f"{ours / base:.2f}x"),
        ("book: price-level updates applied/s (L2Book)", f"{ours * per:,.0f}",
         f"{base * per:,.0f} (plain dict baseline)", f"{ours / base:.2f}x"),
        ("candles/s: Engine <- ReplayFeed (baseline)", f"{n / f['engine_replay_s']:,.0f}", "-", "1.00x"),
        ("candles/s: LiveFeed alone (ccxt; exchange in its own process)", f"{n / f['feed_only_s']:,.0f}",
         "-", f"{f['feed_only_s'] / f['engine_replay_s']:.2f}x engine time"),
        ("candles/s: Engine <- LiveFeed", f"{n / f['engine_live_s']:,.0f}",
         f"{n / f['engine_replay_s']:,.0f}",
         f"{f['engine_live_s'] / f['engine_replay_s']:.2f}x time"),
    ]
    print(f"\n{n_diffs} recorded BTCUSDT diffs x {args.passes} passes; {int(n)} BTC/USDT 1h candles\n")
    w = max(len(r[0]) for r in rows)
    print(f"{'measure':<{w}}  {'value':>12}  {'baseline':>30}  ratio")
    for r in rows:
        print(f"{r[0]:<{w}}  {r[1]:>12}  {r[2]:>30}  {r[3]}")
    overhead = (f["engine_live_s"] - f["engine_replay_s"]) / f["engine_replay_s"]
    per_candle_us = (f["engine_live_s"] - f["engine_replay_s"]) / n * 1e6
    print(f"\nfeed overhead on Engine time per candle: {overhead:+.1%} ({per_candle_us:+.0f} us/candle; "
          f"Engine alone {f['engine_replay_s'] / n * 1e6:.0f} us/candle; target < 10%); "
          f"level updates/s target >= 100k: {'met' if ours * per >= 100_000 else 'NOT met'} "
          f"({per:.0f} levels per recorded diff)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
