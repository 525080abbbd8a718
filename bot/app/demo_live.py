"""The demo's live part: the daemon trading real BTC/USDT hourly candles in accelerated time.

The loopback Binance exchange (``bot.sim``) replays the recorded candles
with ``speed`` simulated ms per real ms on its own event loop in a background
thread (``LoopbackExchange``); the daemon (paper mode, ``feed.source = "exchange"``)
connects to it through the real ccxt.pro client exactly as it would to Binance:
websocket klines, REST backfill, the paper order-book executor. Its store is
seeded with the history just before the replay starts, so it starts warm (the
daemon's restart path: buffers from stored candles, then a REST backfill of what
closed since), and it stops after a bounded number of candles or seconds.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog

from bot.app.daemon import Daemon
from bot.config.settings import Settings
from bot.core.events import timeframe_ms
from bot.marketdata.candle_csv import candle_file, load_candles_csv
from bot.sim import SimExchange, SimSettings
from bot.store.store import Store

log = structlog.get_logger(__name__)
T = TypeVar("T")

DEMO_START_MS = 1_601_510_400_000  # 2020-10-01 00:00 UTC: into the 2020-21 bull run


class LoopbackExchange:
    """A ``SimExchange`` served from its own event loop in a daemon thread (``with`` block)."""

    def __init__(self, settings: SimSettings) -> None:
        self.settings = settings
        self.sim: SimExchange | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="loopback-exchange", daemon=True)

    def _main(self) -> None:
        async def serve() -> None:
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            try:
                async with SimExchange(self.settings) as sim:
                    self.sim = sim
                    self._ready.set()
                    await self._stop.wait()
            except BaseException as exc:  # noqa: BLE001  reported to the starting thread, not retried
                self._error = exc
                self._ready.set()

        asyncio.run(serve())

    def __enter__(self) -> LoopbackExchange:
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None or self.sim is None:
            raise RuntimeError(f"loopback exchange failed to start: {self._error!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    @property
    def http_url(self) -> str:
        assert self.sim is not None
        return self.sim.http_url

    @property
    def ws_url(self) -> str:
        assert self.sim is not None
        return self.sim.ws_url

    def call(self, fn: Callable[[SimExchange], T]) -> T:
        """Run ``fn(sim)`` on the exchange's loop (consistent reads of its state)."""
        assert self._loop is not None and self.sim is not None
        sim = self.sim

        async def run() -> T:
            return fn(sim)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)


def replay_settings(data_dir: Path, start_ms: int, bar_ms: float, symbol: str = "BTC/USDT",
                    timeframe: str = "1h", balances: dict[str, float] | None = None) -> SimSettings:
    """One symbol's recorded candles, one bar every ``bar_ms`` real ms, synthetic book around the price."""
    return SimSettings(data_dir=Path(data_dir), symbols=(symbol,), timeframes=(timeframe,),
                       speed=timeframe_ms(timeframe) / bar_ms, start_ms=start_ms, book_replay=False,
                       matching_book="synthetic", kline_updates=0,
                       balances=balances or {"USDT": 100_000.0})


def live_settings(settings: Settings, exchange: LoopbackExchange, store_path: Path,
                  mode: str = "paper") -> Settings:
    """``settings`` re-pointed at the loopback exchange: exchange feed, no health or API port, own store."""
    return settings.model_copy(update={
        "mode": mode,
        "exchange": settings.exchange.model_copy(update={"http_url": exchange.http_url,
                                                         "ws_url": exchange.ws_url}),
        "feed": settings.feed.model_copy(update={"source": "exchange", "order_book": False,
                                                 "trades": False}),
        "store": settings.store.model_copy(update={"path": store_path, "portfolio": "demo-live"}),
        "health": settings.health.model_copy(update={"enabled": False}),
        "api": settings.api.model_copy(update={"enabled": False}),
        # simulated exchange time runs ahead of the wall clock by design
        "daemon": settings.daemon.model_copy(update={"check_clock_skew": False, "flush_interval_s": 0.5,
                                                     "state_file": Path(f"{store_path}.daemon.json")}),
    })


async def seed_history(settings: Settings, symbol: str, timeframe: str, before_ms: int, bars: int) -> int:
    """Store the ``bars`` recorded candles before ``before_ms`` (the daemon warms up from them)."""
    exch = settings.exchange.name
    candles = load_candles_csv(candle_file(settings.data.dir, exch, symbol, timeframe), exch, symbol,
                               timeframe, before_ms - bars * timeframe_ms(timeframe), before_ms)
    store = await Store.open(settings.store.path, portfolio=settings.store.portfolio)
    try:
        return await store.upsert_candles(candles)
    finally:
        await store.close()


@dataclass(frozen=True, slots=True)
class LiveSession:
    summary: dict[str, Any]
    wall_s: float
    bar_ms: float
    store: Path


def fresh(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".daemon.json"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def run_until(daemon: Any, candles: int, max_s: float, clock: Callable[[], float] = time.monotonic,
                    poll_s: float = 0.1) -> None:
    """Set the daemon's stop event after ``candles`` processed candles or ``max_s`` seconds."""
    deadline = clock() + max_s
    while not daemon.stop.is_set():
        engine = daemon.engine
        if (engine is not None and engine.stats.candles >= candles) or clock() >= deadline:
            daemon.stop.set()
            return
        await asyncio.sleep(poll_s)


async def live_paper_session(settings: Settings, store_path: Path, candles: int = 720, max_s: float = 60.0,
                             bar_ms: float = 40.0, start_ms: int = DEMO_START_MS,
                             warm_bars: int = 200) -> LiveSession:
    """Run the daemon against the loopback exchange for ``candles`` candles (or ``max_s`` seconds)."""

    series = [(s, c.timeframe or settings.backtest.timeframe) for c in settings.strategies if c.enabled
              for s in (c.symbols or settings.backtest.symbols)]
    symbol, timeframe = series[0] if series else ("BTC/USDT", "1h")
    fresh(store_path)
    store_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with LoopbackExchange(replay_settings(settings.data.dir, start_ms, bar_ms, symbol, timeframe)) as ex:
        cfg = live_settings(settings, ex, store_path)
        await seed_history(cfg, symbol, timeframe, start_ms, warm_bars)
        daemon = Daemon(cfg, f"demo-{uuid.uuid4().hex[:8]}")
        watcher = asyncio.create_task(run_until(daemon, candles, max_s))
        try:
            summary = await daemon.run()
        finally:
            watcher.cancel()
    return LiveSession(summary, time.perf_counter() - started, bar_ms, store_path)

