"""The long-running daemon behind ``neuralbot run``.

Start-up: open the store (resume point), restore positions and cash, warm the
candle buffers from stored candles, start the health server and the notifier,
then stream market events into the Engine. Every candle the Engine processed is
also stored, so a restart after any kill resumes after the last stored candle
(replay) or backfills from it over REST (exchange feed).

Signals:

* SIGTERM / SIGINT: stop new entries (trading state ``reducing``), stop the feed,
  cancel pending orders (``daemon.shutdown = "cancel_orders"``: all of them,
  ``"leave_stops"``: all but protective stop / take-profit legs), persist, close
  sockets, return normally (exit code 0).
* SIGHUP: reload the configuration file and validate it; an invalid one is
  rejected (logged, notified) and the running one kept. Risk limits, stops,
  logging, notifications and retraining apply at once; sections that need a
  restart (store, exchange, feed, strategies, health, mode) are reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import structlog

from bot.app import build_engine, build_strategies, engine_settings, risk_limits, summarize
from bot.clock import Clock, LiveClock, SimClock
from bot.config import ConfigError, Settings, date_to_ms, load_settings
from bot.engine import Engine
from bot.events import Candle, OrderSubmitted, timeframe_ms
from bot.feeds.base import Feed
from bot.feeds.replay import ReplayFeed
from bot.health import HealthServer, OpsMetrics
from bot.logging_setup import configure_logging
from bot.notify import Notifier
from bot.store import Store
from risk.gate import TradingState
from risk.portfolio import Position

log = structlog.get_logger(__name__)

PROTECTIVE_LEGS = frozenset({"stop", "take_profit", "trailing_stop"})
RESTART_SECTIONS = ("mode", "exchange", "store", "data", "feed", "backtest", "strategies", "health", "daemon")


def state_file_for(settings: Any) -> Path:
    configured = settings.daemon.state_file
    return Path(configured) if configured else Path(f"{settings.store.path}.daemon.json")


class Daemon:
    def __init__(self, settings: Settings, run_id: str, stop: asyncio.Event | None = None,
                 config_path: Path | str | None = None) -> None:
        self.settings = settings
        self.run_id = run_id
        self.stop = stop or asyncio.Event()
        self.config_path = config_path or os.environ.get("NEURALBOT_CONFIG")
        self.clock: Clock = LiveClock()
        self.metrics = OpsMetrics(self.settings.health.events_window_s)
        self.notifier = Notifier(self.settings.notify, on_drop=self.metrics.notifications_dropped.inc)
        self.health: HealthServer | None = None
        self.engine: Engine | None = None
        self.store: Store | None = None
        self.feed: Feed | None = None
        self.retrainer: Any = None
        self.status = "starting"
        self.generation = 1
        self.last_reload: dict[str, Any] = {}
        self.started_ms = LiveClock().now_ms()
        self._candles: list[Candle] = []
        self._t_event: float | None = None
        self._last_state = ""
        self._tasks: list[asyncio.Task[Any]] = []

    # -- composition -------------------------------------------------------------------

    @property
    def symbols(self) -> list[str]:
        return list(self.settings.backtest.symbols)

    @property
    def timeframe(self) -> str:
        return self.settings.backtest.timeframe

    def _build_feed(self, resume: dict[str, int | None]) -> Feed:
        s = self.settings
        if s.feed.source == "replay":
            self.clock = SimClock()
            start = date_to_ms(s.backtest.start)
            after = [ts for ts in resume.values() if ts is not None]
            if after:  # resume: everything up to the last stored candle was processed
                start = max(start or 0, min(after) + timeframe_ms(self.timeframe))
            return ReplayFeed.from_csv(s.data.dir, s.exchange.name, self.symbols, self.timeframe,
                                       start, date_to_ms(s.backtest.end), speed=s.feed.replay_speed)
        from bot.exchange_sim.ccxt_config import make_ccxt_binance
        from bot.feeds.live import LiveFeed
        from bot.feeds.live_settings import LiveFeedSettings

        if not s.exchange.http_url:
            raise NotImplementedError("feed.source = 'exchange' needs exchange.http_url until the"
                                      " production exchange client is wired")
        client = make_ccxt_binance(s.exchange.http_url, s.exchange.ws_url)
        stored = [ts for ts in resume.values() if ts is not None]
        since = min(stored) + timeframe_ms(self.timeframe) if stored and self.settings.daemon.backfill else None
        skew = LiveFeedSettings().max_clock_skew_ms if self.settings.daemon.check_clock_skew else None
        return LiveFeed(client, LiveFeedSettings(exchange=s.exchange.name, symbols=tuple(self.symbols),
                                                 timeframes=(self.timeframe,), since_ms=since,
                                                 max_clock_skew_ms=skew), self.clock)

    async def _resume(self, engine: Engine, store: Store) -> dict[str, int | None]:
        """Restore cash and positions from the store; warm buffers; return last stored candle per symbol."""
        equity = await store.fetch("equity")
        if equity:
            engine.portfolio.cash = float(equity[-1]["cash"])
        for row in await store.fetch("positions"):
            if row["amount"] > 0:
                engine.portfolio.restore(Position(
                    row["symbol"], row["amount"], row["avg_price"], row["stop_price"], row["take_profit"],
                    engine.settings.stops.trailing_stop_pct, row["realized_pnl"], row["ts"]))
        exch, tf, warm = self.settings.exchange.name, self.timeframe, self.settings.daemon.warmup_bars
        resume: dict[str, int | None] = {}
        for sym in self.symbols:
            last = await store.last_candle_ts(exch, sym, tf)
            resume[sym] = last
            if last is None or warm == 0:
                continue
            since = last - (warm - 1) * timeframe_ms(tf)
            from bot.buffer import CandleBuffer

            buf = engine.buffers.setdefault((sym, tf), CandleBuffer(sym, tf, engine.settings.buffer_capacity))
            for candle in await store.load_candles(exch, sym, tf, since, last + 1):
                buf.append(candle)
        log.info("daemon_resumed", cash=round(engine.portfolio.cash, 2), resume=resume,
                 positions=[p.symbol for p in engine.portfolio.open_positions()])
        return resume

    def _instrument(self, engine: Engine) -> None:
        engine.subscribe(self.metrics.listener)
        engine.subscribe(self.notifier.listener)
        engine.subscribe(self._on_fact)
        for strategy in engine.strategies:
            inner = strategy.evaluate

            def timed(ctx: Any, _inner: Any = inner, _name: str = strategy.name) -> Any:
                t0 = time.perf_counter()
                try:
                    return _inner(ctx)
                finally:
                    self.metrics.observe_inference(_name, time.perf_counter() - t0)

            strategy.evaluate = timed  # type: ignore[method-assign]

    def _on_fact(self, item: Any) -> None:
        if isinstance(item, OrderSubmitted) and self._t_event is not None:
            self.metrics.observe_decision(time.perf_counter() - self._t_event)
        if self.retrainer is not None:
            self.retrainer.observe(item)

    # -- running -----------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload(), "reload"))
        self.store = store = await Store.open(self.settings.store.path, portfolio=self.settings.store.portfolio)
        try:
            await store.start_run(self.run_id, self.settings.mode, self.started_ms, self.settings.redacted())
            strategies = build_strategies(self.settings, self.symbols, self.timeframe)
            self.engine = engine = build_engine(self.settings, strategies=strategies, store=store,
                                                clock=self.clock)
            self._instrument(engine)
            resume = await self._resume(engine, store)
            self.feed = self._build_feed(resume)
            engine.clock = self.clock
            await self._start_services()
            self.status = "ok"
            self._check_state()
            self.notifier.notify("state", "daemon started", mode=self.settings.mode, run_id=self.run_id)
            self._spawn(self._housekeeping(), "housekeeping")
            reason = await self._trade(engine, self.feed)
            summary = await self._shutdown(engine, store, reason)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await self._stop_services()
            await store.close()
        return summary

    def _request_stop(self, why: str) -> None:
        log.info("daemon_signal", signal=why)
        self.stop.set()

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        task.add_done_callback(self._tasks_done)

    def _tasks_done(self, task: asyncio.Task[Any]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("daemon_task_failed", task=task.get_name(), error=repr(task.exception()))
            self.metrics.errors.labels(task.get_name()).inc()

    async def _start_services(self) -> None:
        await self.notifier.start()
        if self.settings.health.enabled:
            self.health = HealthServer(self.settings.health, self.metrics, self.health_snapshot)
            await self.health.start()
        if self.settings.retrain.enabled:
            from bot.retrain import Retrainer

            self.retrainer = Retrainer(self.settings.retrain, self.settings, metrics=self.metrics,
                                       notifier=self.notifier, hosts=self.engine.strategies if self.engine else [])
            await self.retrainer.start()

    async def _stop_services(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.retrainer is not None:
            await self.retrainer.close()
        if self.health is not None:
            await self.health.stop()
        await self.notifier.close()
        self._write_state()

    async def _trade(self, engine: Engine, feed: Feed) -> str:
        """Feed events into the Engine until the feed ends, fails or a stop is requested."""
        consume = asyncio.create_task(self._consume(engine, feed), name="consume")
        stopper = asyncio.create_task(self.stop.wait(), name="stop-wait")
        await asyncio.wait({consume, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        reason = "signal" if self.stop.is_set() else "feed ended"
        if engine.state is TradingState.ACTIVE:
            engine.state = TradingState.REDUCING  # no new entries from here on
        self.status = "stopping"
        await feed.close()
        if not consume.done():
            consume.cancel()
        try:
            await consume
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # the feed or engine failed: persist, notify, exit non-zero upstream
            reason = f"error: {exc!r}"
            log.error("daemon_failed", error=repr(exc))
            self.metrics.errors.labels("trading").inc()
            self.notifier.notify("error", "trading loop failed", error=repr(exc))
        return reason

    async def _consume(self, engine: Engine, feed: Feed) -> None:
        """The only task writing to the store while trading (one SQLite connection, no overlap)."""
        every = self.settings.daemon.flush_interval_s
        next_persist = time.monotonic() + every
        async for event in feed:
            self.metrics.market_event(event)
            self._t_event = time.perf_counter()
            await engine.on_event(event)
            self._t_event = None
            if isinstance(event, Candle):
                self._candles.append(event)
                self._check_state()
                if self.retrainer is not None:
                    self.retrainer.observe_candle(event)
            if time.monotonic() >= next_persist:
                await self._persist_safely()
                next_persist = time.monotonic() + every

    async def _persist_safely(self) -> None:
        try:
            await self._persist()
        except Exception as exc:  # disk trouble: keep trading; queued rows and candles are retried
            log.error("persist_failed", error=repr(exc))
            self.metrics.errors.labels("persist").inc()
            self.notifier.notify("error", "persisting state failed", error=repr(exc))

    def _check_state(self) -> None:
        state = self.engine.state.value if self.engine is not None else "starting"
        if state != self._last_state:
            if self._last_state:
                self.notifier.notify("state", f"trading state {self._last_state} -> {state}")
            self._last_state = state
            self.metrics.set_state(state)
            self._write_state()

    async def _persist(self) -> None:
        """Facts first, then the candles they came from (a restart never skips unstored facts)."""
        assert self.store is not None
        await self.store.flush()
        if self._candles:
            batch, self._candles = self._candles, []
            try:
                await self.store.upsert_candles(batch)
            except BaseException:
                self._candles = batch + self._candles
                raise

    async def _housekeeping(self) -> None:
        d = self.settings.daemon
        last_beat = 0.0
        while True:
            await asyncio.sleep(min(d.flush_interval_s, d.heartbeat_s))
            stats = getattr(self.feed, "stats", None)
            if isinstance(stats, dict):
                for key, st in stats.items():
                    self.metrics.set_reconnects(key, int(getattr(st, "reconnects", 0)))
            if self.retrainer is not None:
                self.metrics.set_model_ages(self.retrainer.model_ages())
            if time.monotonic() - last_beat >= d.heartbeat_s:
                last_beat = time.monotonic()
                self._write_state()

    async def _shutdown(self, engine: Engine, store: Store, reason: str) -> dict[str, Any]:
        mode = self.settings.daemon.shutdown
        cancelled = await cancel_open_orders(engine.executor, keep_protective=(mode == "leave_stops"))
        await self._persist()
        self._check_state()
        summary = await summarize(engine, store, self.timeframe, self.settings.backtest.initial_equity)
        summary.update(stop_reason=reason, cancelled_orders=cancelled, shutdown=mode)
        self.status = "stopped"
        self.notifier.notify("state", "daemon stopped", reason=reason, cancelled_orders=cancelled)
        log.info("daemon_stopped", reason=reason, candles=summary["candles"], equity=summary["final_equity"],
                 cancelled_orders=cancelled)
        return summary

    # -- reload ------------------------------------------------------------------------

    async def reload(self) -> bool:
        """SIGHUP: validate the config file again; apply it, or keep the running one."""
        try:
            new = load_settings(self.config_path)
            build_strategies(new, list(new.backtest.symbols), new.backtest.timeframe)  # params valid?
        except (ConfigError, ValueError) as exc:
            text = exc.render() if isinstance(exc, ConfigError) else str(exc)
            self.last_reload = {"ok": False, "error": text, "ms": LiveClock().now_ms()}
            log.error("config_reload_rejected", error=text)
            self.notifier.notify("error", "config reload rejected; keeping the running configuration",
                                 error=text)
            self._write_state()
            return False
        old, self.settings = self.settings, new
        restart = [k for k in RESTART_SECTIONS if _section(old, k) != _section(new, k)]
        if self.engine is not None:
            self.engine.gate.limits = risk_limits(new)
            self.engine.settings = engine_settings(new)
        configure_logging(new.logging.level, new.logging.format, run_id=self.run_id, mode=old.mode)
        self.notifier.reconfigure(self.settings.notify)
        if self.retrainer is not None:
            self.retrainer.reconfigure(self.settings.retrain)
        self.generation += 1
        self.last_reload = {"ok": True, "ms": LiveClock().now_ms(), "restart_required": restart}
        log.info("config_reloaded", generation=self.generation, restart_required=restart)
        self.notifier.notify("state", "configuration reloaded", generation=self.generation,
                             restart_required=",".join(restart) or "none")
        self._write_state()
        return True

    # -- reporting -----------------------------------------------------------------------

    def health_snapshot(self) -> dict[str, Any]:
        engine = self.engine
        feeds = self.metrics.feed_ages()
        stale_after = self.settings.health.stale_after_s or 3 * timeframe_ms(self.timeframe) / 1000
        if self.settings.feed.source == "replay" and self.settings.feed.replay_speed > 0:
            stale_after = max(stale_after if self.settings.health.stale_after_s else 0, 10.0 / self.settings.feed.replay_speed)
        status = self.status
        if status == "ok" and any(age > stale_after for age in feeds.values()):
            status = "degraded"
        positions = []
        equity: dict[str, float] = {}
        if engine is not None:
            pf = engine.portfolio
            for p in pf.open_positions():
                price = pf.last_price.get(p.symbol, p.avg_price)
                positions.append({"symbol": p.symbol, "amount": p.amount, "avg_price": p.avg_price,
                                  "stop_price": p.stop_price, "take_profit": p.take_profit, "price": price,
                                  "unrealized_pnl": round((price - p.avg_price) * p.amount, 8)})
            eq = pf.equity()
            equity = {"equity": round(eq, 2), "cash": round(pf.cash, 2), "heat": round(pf.heat(), 2),
                      "heat_pct": round(100 * pf.heat() / eq, 4) if eq > 0 else 0.0}
        models = self.retrainer.model_report() if self.retrainer is not None else {}
        reconnects = {k: int(getattr(v, "reconnects", 0)) for k, v in (getattr(self.feed, "stats", None) or {}).items()}
        return {
            "status": status, "run_id": self.run_id, "pid": os.getpid(), "mode": self.settings.mode,
            "portfolio": self.settings.store.portfolio, "uptime_s": round((LiveClock().now_ms() - self.started_ms) / 1000, 1),
            "trading_state": engine.state.value if engine is not None else "starting",
            "feeds": {k: {"age_s": a, "stale": a > stale_after, "reconnects": reconnects.get(k, 0)} for k, a in feeds.items()},
            "positions": positions, **equity,
            "models": models, "events_per_second": round(self.metrics.events_per_second(), 3),
            "candles": engine.stats.candles if engine is not None else 0,
            "last_candle_ts": engine.stats.last_ts if engine is not None else None,
            "config_generation": self.generation, "last_reload": self.last_reload,
            "health_port": self.health.port if self.health is not None else None,
        }

    def _write_state(self) -> None:
        path = state_file_for(self.settings)
        try:
            snap = self.health_snapshot()
            snap["updated_ms"] = LiveClock().now_ms()
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(json.dumps(snap, default=str, sort_keys=True))
            tmp.replace(path)
        except OSError as exc:
            log.warning("state_file_failed", path=str(path), error=repr(exc))


async def cancel_open_orders(executor: Any, keep_protective: bool) -> int:
    """Cancel what the executor holds open; protective legs survive when ``keep_protective``."""
    hook = getattr(executor, "cancel_open_orders", None)
    if hook is not None:  # exchange executors: delegate (they know which orders are stops)
        return int(await hook(keep_protective=keep_protective))
    pending = getattr(executor, "_pending", None)
    if not isinstance(pending, dict):
        return 0
    n = 0
    for symbol, orders in list(pending.items()):
        keep = [o for o in orders if keep_protective and o.intent_id.rsplit(":", 1)[-1] in PROTECTIVE_LEGS]
        n += len(orders) - len(keep)
        if keep:
            pending[symbol] = keep
        else:
            del pending[symbol]
    return n


def _section(settings: Any, name: str) -> Any:
    value = getattr(settings, name, None)
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else (
        [v.model_dump(mode="json") for v in value] if isinstance(value, list) else value)


async def run_daemon(settings: Settings, run_id: str, stop: asyncio.Event | None = None,
                     config_path: Path | str | None = None) -> dict[str, Any]:
    """Trade until SIGINT/SIGTERM (or ``stop``), reloading the config on SIGHUP; return a summary."""
    return await Daemon(settings, run_id, stop, config_path).run()
