"""The long-running daemon behind ``neuralbot run``.

Start-up: lock the store's portfolio (``bot.store.lock``: a second daemon is refused),
open the store (resume point), restore positions and cash, warm the
candle buffers from stored candles, start the health server and the notifier,
then stream market events into the Engine. Every candle the Engine processed is
also stored, so a restart after any kill resumes after the last stored candle
(replay) or backfills from it over REST (exchange feed).

Signals:

* SIGTERM / SIGINT: stop new entries (trading state ``reducing``), stop the feed,
  cancel pending orders (``daemon.shutdown = "cancel_orders"``: all of them,
  ``"leave_stops"``: all but protective stop / take-profit legs), persist, close
  sockets, return normally (exit code 0).
* SIGHUP: reload the configuration file and validate it (models included); an invalid
  one is rejected (logged, notified, ``/health.last_reload``) and the running one kept;
  one that arrives while starting is applied once started. Risk limits, stops,
  logging, notifications and retraining apply at once; sections that need a
  restart (store, exchange, feed, strategies, health, mode) are reported.

Operator actions stored by ``neuralbot halt`` / ``resume`` (``bot.ops.trading_control``)
are carried out within ``OPERATOR_POLL_S``; a fatal store error ends the daemon with
exit 1, the store closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from bot.kernel.compose import summarize
from bot.core.clock import Clock, LiveClock
from bot.config.settings import ConfigError, Settings
from bot.config.load import load_settings
from bot.app.early_signals import early_sighup_pending
from bot.engine.engine import Engine
from bot.engine.settings import DURABLE_STATE_POLL_MS
from bot.core.events import Candle, OrderSubmitted, timeframe_ms
from bot.core.feed_port import Feed
from bot.ops.health import HealthServer, OpsMetrics
from bot.kernel.kernel import Kernel, System
from bot.config.logging_setup import configure_logging
from bot.config.ops import state_file_for
from bot.ops.notify import Notifier
from bot.ops.trading_control import carry_out_operator_actions
from bot.store.lock import StoreLock
from bot.store.store import Store
from risk.gate import TradingState
from strategies.models.registry import RegistryError

if TYPE_CHECKING:
    from strategies.predictor import ModelHolder

log = structlog.get_logger(__name__)

OPERATOR_POLL_S = DURABLE_STATE_POLL_MS / 1000  # how often stored operator actions are looked for
RESTART_SECTIONS = ("mode", "exchange", "store", "data", "feed", "backtest", "strategies", "health", "daemon",
                    "api", "telegram")


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
        self.system: System | None = None
        self._initial_equity = settings.backtest.initial_equity
        self.retrainer: Any = None
        self.cockpit: Any = None  # bot.app.cockpit.Cockpit: REST API, dashboard, Telegram commands
        self.engine_lock = asyncio.Lock()  # one bar or one operator action at a time
        self.status = "starting"
        self.generation = 1
        self.last_reload: dict[str, Any] = {}
        self.started_ms = LiveClock().now_ms()
        self._candles: list[Candle] = []
        self._t_event: float | None = None
        self._last_state = ""
        self._tasks: list[asyncio.Task[Any]] = []
        self._reload_pending = early_sighup_pending()
        self._operator_seen = 0  # the last operator action carried out
        self._idle = asyncio.Event()  # the consumer is between events (set) or inside one
        self._idle.set()

    # -- composition -------------------------------------------------------------------

    @property
    def symbols(self) -> list[str]:
        return self.system.symbols if self.system is not None else list(self.settings.backtest.symbols)

    @property
    def timeframe(self) -> str:
        return self.system.timeframe if self.system is not None else self.settings.backtest.timeframe

    def series_timeframe(self, symbol: str) -> str:
        """The finest timeframe ``symbol`` trades on."""
        tfs = [tf for sym, tf in (self.system.series if self.system is not None else []) if sym == symbol]
        return min(tfs, key=timeframe_ms) if tfs else self.timeframe

    def _instrument(self, engine: Engine) -> None:
        engine.subscribe(self.metrics.listener)
        engine.subscribe(self.notifier.listener)
        engine.subscribe(self._on_fact)
        engine.time_evaluations(self.metrics.observe_inference)

    def _on_fact(self, item: Any) -> None:
        if isinstance(item, OrderSubmitted) and self._t_event is not None:
            self.metrics.observe_decision(time.perf_counter() - self._t_event)
        if self.retrainer is not None:
            self.retrainer.observe(item)

    # -- running -----------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        cfg = self.settings.store
        lock = StoreLock.acquire(cfg.path, cfg.portfolio, run_id=self.run_id)  # or StoreLocked: exit 2
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        try:
            self.store = store = await Store.open(cfg.path, portfolio=cfg.portfolio)
            try:
                return await self._start_and_trade(store)
            finally:
                await self._stop_services()
                if self.system is not None:
                    await self._close_feed(self.system.feed)  # idempotent; closes the feed's client
                    if self.system.rest_client is not None:
                        with contextlib.suppress(Exception):
                            await self.system.rest_client.close()
                await store.close()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            lock.release()

    async def _start_and_trade(self, store: Store) -> dict[str, Any]:
        kernel = Kernel(self.settings, daemon=True, source=str(self.config_path or ""))  # or ConfigError: exit 2
        await store.start_run(self.run_id, self.settings.mode, self.started_ms, self.settings.redacted())
        self.system = system = await kernel.daemon(store, kernel.strategies())
        engine = self.engine = system.engine
        self.feed, self.clock = system.feed, system.clock
        if system.executor == "exchange":  # the account's equity, not the configured paper one
            self._initial_equity = round(engine.portfolio.equity(), 2)
        self._instrument(engine)
        self._operator_seen = await carry_out_operator_actions(engine, store, starting=True)
        await self._start_services()
        self.status = "ok"
        self._check_state()
        self.notifier.notify("state", "daemon started", mode=self.settings.mode, run_id=self.run_id)
        self._spawn(self._housekeeping(), "housekeeping")
        log.info("daemon_started", mode=self.settings.mode, feed=self.settings.feed.source,
                 executor=system.executor, strategies=[s.name for s in engine.strategies],
                 symbols=system.symbols, timeframes=sorted({tf for _, tf in system.series}),
                 trading_state=engine.state.value, reconcile=system.reconcile)
        if self._reload_pending:  # a SIGHUP arrived while starting
            self.request_reload()
        reason = await self._trade(engine, system.feed)
        return await self._shutdown(engine, store, reason)

    def request_reload(self) -> None:
        """SIGHUP: reload now, or once started (a reload never races the start-up)."""
        if self.status == "starting":
            self._reload_pending = True
        else:
            self._reload_pending = False
            self._spawn(self.reload(), "reload")

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

    def _model_holders(self) -> list[ModelHolder]:
        """Every model holder the running strategies predict with (what the retrainer swaps in)."""
        return [h for s in (self.engine.strategies if self.engine else []) for h in s.model_holders()]

    async def _start_services(self) -> None:
        await self.notifier.start()
        if self.settings.api.enabled or self.settings.telegram.commands:
            await self._start_cockpit()  # before /health: once it answers, the cockpit does too
        if self.settings.health.enabled:
            self.health = HealthServer(self.settings.health, self.metrics, self.health_snapshot)
            await self.health.start()
        if self.settings.retrain.enabled:
            # the training stack (torch, sklearn): only when [retrain] is enabled
            from bot.ops.retrain import Retrainer

            self.retrainer = Retrainer(self.settings.retrain, self.settings, metrics=self.metrics,
                                       notifier=self.notifier, holders=self._model_holders(),
                                       cadence=retrain_cadence(self.settings))
            await self.retrainer.start()

    async def _start_cockpit(self) -> None:
        # the REST API and Telegram (aiohttp): only when the cockpit is enabled
        from bot.app.cockpit import Cockpit
        from bot.ops.control import Operator

        assert self.engine is not None and self.store is not None and self.system is not None
        operator = Operator(self.engine, self.store, symbols=self.symbols,
                            lock=self.engine_lock, notifier=self.notifier, reload=self.reload,
                            on_change=self._on_operator_action)
        self.cockpit = Cockpit(self, operator)
        await self.cockpit.start()

    def _on_operator_action(self, result: Any) -> None:
        self._check_state()
        self.cockpit.on_action(result)

    async def _stop_services(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.cockpit is not None:
            await self.cockpit.stop()
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
        self.stop.set()  # shutdown has begun: the consumer takes no further event
        engine.set_state(TradingState.REDUCING, "daemon shutting down")  # only escalates
        self.status = "stopping"
        if not consume.done():  # let it finish the event in hand, then stop it at the feed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self.settings.daemon.shutdown_timeout_s)
            consume.cancel()
        await self._close_feed(feed)
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

    async def _close_feed(self, feed: Feed) -> None:
        """Close the feed (its sockets), bounded by ``daemon.shutdown_timeout_s``."""
        try:
            await asyncio.wait_for(feed.close(), self.settings.daemon.shutdown_timeout_s)
        except TimeoutError:
            log.error("feed_close_timeout", timeout_s=self.settings.daemon.shutdown_timeout_s)
        except Exception as exc:  # noqa: BLE001  closing is best effort: state is persisted either way
            log.warning("feed_close_failed", error=repr(exc))

    async def _consume(self, engine: Engine, feed: Feed) -> None:
        """The only task writing to the store while trading (one SQLite connection, no overlap)."""
        every = self.settings.daemon.flush_interval_s
        next_persist = time.monotonic() + every
        next_operator = time.monotonic() + OPERATOR_POLL_S
        async for event in feed:
            if self.stop.is_set():  # shutdown has begun: nothing more reaches the Engine
                return
            self._idle.clear()
            try:
                async with self.engine_lock:  # an operator action waits for the bar, never splits it
                    await self._process(engine, event)
                    if time.monotonic() >= next_operator:  # halt / resume / flatten an operator stored
                        assert self.store is not None
                        self._operator_seen = await carry_out_operator_actions(
                            engine, self.store, self._operator_seen)
                        self._check_state()
                        next_operator = time.monotonic() + OPERATOR_POLL_S
                    if time.monotonic() >= next_persist:
                        await self._persist_safely()
                        next_persist = time.monotonic() + every
            finally:
                self._idle.set()

    async def _process(self, engine: Engine, event: Any) -> None:
        self.metrics.market_event(event)
        if not isinstance(event, Candle):  # market time (paper) follows the feed; wall time does not
            self.clock.advance_to(event.ts)
        self._t_event = time.perf_counter()
        await engine.on_event(event)
        self._t_event = None
        if isinstance(event, Candle):
            self._candles.append(event)
            self._check_state()
            if self.retrainer is not None:
                self.retrainer.observe_candle(event)

    async def _persist_safely(self) -> None:
        try:
            await self._persist()
        except sqlite3.OperationalError as exc:  # disk full, locked: keep trading; rows are retried
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
            if self.feed is not None:
                for key, n in self.feed.reconnects_by_stream().items():
                    self.metrics.set_reconnects(key, n)
            if self.retrainer is not None:
                self.metrics.set_model_ages(self.retrainer.model_ages())
            if time.monotonic() - last_beat >= d.heartbeat_s:
                last_beat = time.monotonic()
                self._write_state()

    async def _shutdown(self, engine: Engine, store: Store, reason: str) -> dict[str, Any]:
        mode = self.settings.daemon.shutdown
        async with self.engine_lock:
            cancelled = await engine.cancel_orders(self.symbols, keep_protective=mode == "leave_stops",
                                                   reason="daemon shutdown")
            await self._persist()
        self._check_state()
        summary = await summarize(engine, store, self.timeframe, self._initial_equity)
        summary.update(stop_reason=reason, cancelled_orders=cancelled, shutdown=mode)
        self.status = "stopped"
        self.notifier.notify("state", "daemon stopped", reason=reason, cancelled_orders=cancelled)
        log.info("daemon_stopped", reason=reason, candles=summary["candles"], equity=summary["final_equity"],
                 cancelled_orders=cancelled)
        return summary

    # -- reload ------------------------------------------------------------------------

    async def reload(self) -> bool:
        """SIGHUP: validate the config file (and the models it names) again; apply it, or keep
        the running one. Everything that can fail is done before anything changes."""
        try:
            new = load_settings(self.config_path)
            kernel = Kernel(new, daemon=True, source=str(self.config_path or ""))  # one it cannot run: rejected
            kernel.strategies()  # params valid, models loadable?
            if self.retrainer is not None:  # re-reads the registry's meta.json files
                self.retrainer.reconfigure(new.retrain, retrain_cadence(new))
        except (ConfigError, ValueError, OSError, RegistryError) as exc:
            text = exc.render() if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            self.last_reload = {"ok": False, "error": text, "ms": LiveClock().now_ms()}
            log.error("config_reload_rejected", error=text)
            self.notifier.notify("error", "config reload rejected; keeping the running configuration",
                                 error=text)
            self._write_state()
            return False
        old, self.settings = self.settings, new
        restart = [k for k in RESTART_SECTIONS if _section(old, k) != _section(new, k)]
        if self.engine is not None:
            kernel.reconfigure(self.engine)
        configure_logging(new.logging.level, new.logging.format, run_id=self.run_id, mode=old.mode)
        self.notifier.reconfigure(new.notify)
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
        problems = [f"feed {k} silent for {age:.0f} s (stale after {stale_after:.0f} s)"
                    for k, age in feeds.items() if age > stale_after]
        if engine is not None and engine.state is not TradingState.ACTIVE:
            problems.append(f"trading {engine.state.value}: {engine.state_reason}")
        if self.last_reload.get("ok") is False:
            problems.append(f"last reload failed: {self.last_reload.get('error', '')}")
        status = "degraded" if self.status == "ok" and problems else self.status
        book: dict[str, Any] = engine.portfolio.report() if engine is not None else {"positions": []}
        models = self.retrainer.model_report() if self.retrainer is not None else {}
        reconnects = self.feed.reconnects_by_stream() if self.feed is not None else {}
        return {
            "status": status, "run_id": self.run_id, "pid": os.getpid(), "mode": self.settings.mode,
            "portfolio": self.settings.store.portfolio, "uptime_s": round((LiveClock().now_ms() - self.started_ms) / 1000, 1),
            "trading_state": engine.state.value if engine is not None else "starting",
            "trading_state_reason": engine.state_reason if engine is not None else "",
            "problems": problems,
            "executor": self.system.executor if self.system is not None else "",
            "feeds": {k: {"age_s": a, "stale": a > stale_after, "reconnects": reconnects.get(k, 0)} for k, a in feeds.items()},
            **book,
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


def retrain_cadence(settings: Settings) -> str | None:
    """The scheduled retrain cadence: the walk-forward one, unless ``retrain.scheduled`` is off."""
    return settings.walkforward.retrain_every if settings.retrain.scheduled else None


def _section(settings: Any, name: str) -> Any:
    value = getattr(settings, name, None)
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else (
        [v.model_dump(mode="json") for v in value] if isinstance(value, list) else value)


async def run_daemon(settings: Settings, run_id: str, stop: asyncio.Event | None = None,
                     config_path: Path | str | None = None) -> dict[str, Any]:
    """Trade until SIGINT/SIGTERM (or ``stop``), reloading the config on SIGHUP; return a summary."""
    return await Daemon(settings, run_id, stop, config_path).run()
