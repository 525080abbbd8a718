"""Background retraining with hot swap.

Triggers (checked every ``check_interval_s``, at most one job at a time, and no
sooner than ``min_interval_hours`` after the previous attempt):

* schedule: a ``[walkforward] retrain_every`` boundary (e.g. a new quarter) has passed
  since the newest model was trained: the cadence walk-forward evaluation measured;
* accuracy drop: the rolling hit rate of the running models' direction calls
  (``Signal.probability`` vs the next bar) falls more than ``accuracy_drop_pct``
  percent (relative) below the rate measured over the first full window after the
  models were loaded or swapped;
* expiry: a model is older than ``max_model_age_days`` (reported in ``/health``).

A job runs in a separate *spawned* process (``multiprocessing``), so trading never
stalls on training. For each registry model it fits a candidate with the same
spec on the recent history minus the last ``eval_bars`` bars, then scores
candidate and running model on those held-out bars (Brier score for classifiers,
MSE for regressors; lower is better). Only a candidate that beats the running
model by more than ``min_improvement`` is saved to the registry (the old model is
archived under ``.archive/``) and handed to every strategy exposing
``swap_model(name, model)``; otherwise nothing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import multiprocessing as mp
import shutil
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog

from bot.clock import Clock, LiveClock
from bot.events import Candle, Signal
from bot.evaluation.schedule import retrain_due
from bot.ops_config import RetrainConfig
from bot.retrain_job import DEFAULT_TRAINER, RetrainJob, Verdict, run_in_child

log = structlog.get_logger(__name__)

# -- the daemon side -----------------------------------------------------------------------


@dataclass(slots=True)
class AccuracyTracker:
    """Rolling hit rate of direction calls; ``dropped`` once it falls below the baseline."""

    window: int
    drop_pct: float
    hits: deque[bool] = field(default_factory=deque)
    baseline: float | None = None
    pending: dict[str, tuple[int, float, float]] = field(default_factory=dict)  # symbol -> (ts, p, close)
    last_close: dict[str, float] = field(default_factory=dict)

    def signal(self, sig: Signal) -> None:
        if sig.probability is not None and sig.symbol in self.last_close:
            self.pending[sig.symbol] = (sig.ts, sig.probability, self.last_close[sig.symbol])

    def candle(self, c: Candle) -> None:
        pend = self.pending.get(c.symbol)
        if pend is not None and c.ts >= pend[0]:
            del self.pending[c.symbol]
            self.add((pend[1] > 0.5) == (c.close > pend[2]))
        self.last_close[c.symbol] = c.close

    def add(self, hit: bool) -> None:
        self.hits.append(hit)
        if len(self.hits) > self.window:
            self.hits.popleft()
        if self.baseline is None and len(self.hits) == self.window:
            self.baseline = self.accuracy()

    def accuracy(self) -> float:
        return sum(self.hits) / len(self.hits) if self.hits else float("nan")

    def dropped(self) -> bool:
        if self.baseline is None or len(self.hits) < self.window:
            return False
        return self.accuracy() < self.baseline * (1 - self.drop_pct / 100.0)

    def reset(self) -> None:
        self.hits.clear()
        self.baseline = None


def _created_ms(meta: dict[str, Any]) -> int:
    with contextlib.suppress(KeyError, ValueError):
        dt = datetime.strptime(meta["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        return int(dt.timestamp() * 1000)
    return 0


def _trades(host: Any, symbol: str, timeframe: str) -> bool:
    """Whether a running strategy trades the series the models were retrained on."""
    return getattr(host, "timeframe", timeframe) == timeframe and symbol in getattr(host, "symbols", (symbol,))


class Retrainer:
    def __init__(self, config: RetrainConfig, settings: Any, *, metrics: Any = None, notifier: Any = None,
                 hosts: Iterable[Any] = (), clock: Clock | None = None, trainer: str = DEFAULT_TRAINER,
                 cadence: str | None = None) -> None:
        self.config = config
        self.cadence = cadence  # [walkforward] retrain_every; None: retrain only on triggers
        self.settings = settings
        self.metrics = metrics
        self.notifier = notifier
        self.hosts = [h for h in hosts if callable(getattr(h, "swap_model", None))]
        self.clock = clock or LiveClock()
        self.trainer = trainer
        self.tracker = AccuracyTracker(config.accuracy_window, config.accuracy_drop_pct)
        self.last_attempt_ms: int | None = None
        self.running = False
        self.history: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._proc: Any = None
        self._metas: dict[str, dict[str, Any]] = {}
        self.refresh()

    @property
    def root(self) -> Path:
        return Path(self.config.models_dir) / f"{self.config.symbol.replace('/', '_')}_{self.config.timeframe}"

    def refresh(self) -> None:
        from strategies.registry import read_meta

        self._metas = {p.parent.name: read_meta(p.parent) for p in sorted(self.root.glob("*/meta.json"))}

    def reconfigure(self, config: RetrainConfig, cadence: str | None = None) -> None:
        self.config, self.cadence = config, cadence
        self.tracker.window, self.tracker.drop_pct = config.accuracy_window, config.accuracy_drop_pct
        self.refresh()

    # -- observation (engine listener / daemon) -------------------------------------------

    def observe(self, item: Any) -> None:
        if isinstance(item, Signal) and item.timeframe == self.config.timeframe:
            self.tracker.signal(item)

    def observe_candle(self, candle: Candle) -> None:
        if candle.timeframe == self.config.timeframe:
            self.tracker.candle(candle)

    def model_ages(self) -> dict[str, float]:
        now = self.clock.now_ms()
        return {n: (now - _created_ms(m)) / 1000 for n, m in self._metas.items()}

    def model_report(self) -> dict[str, Any]:
        max_age = self.config.max_model_age_days * 86400
        return {n: {"age_s": round(a, 1), "expired": a > max_age, "created_at": self._metas[n].get("created_at")}
                for n, a in self.model_ages().items()}

    def due(self) -> str | None:
        """Why a retrain should start now, or ``None``."""
        now = self.clock.now_ms()
        if self.running or not self._metas:
            return None
        if self.last_attempt_ms is not None and now - self.last_attempt_ms < self.config.min_interval_hours * 3.6e6:
            return None
        ages = self.model_ages()
        expired = [n for n, a in ages.items() if a > self.config.max_model_age_days * 86400]
        if expired:
            return f"expired: {', '.join(expired)}"
        if self.cadence is not None and retrain_due(now - int(min(ages.values()) * 1000), now, self.cadence):
            return f"schedule: every {self.cadence}"
        if self.tracker.dropped():
            return f"accuracy drop: {self.tracker.accuracy():.3f} vs baseline {self.tracker.baseline:.3f}"
        return None

    # -- running jobs -----------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="retrain")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._kill()

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.is_alive():
            proc.terminate()
            proc.join(5)
            if proc.is_alive():
                proc.kill()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.check_interval_s)
            self.refresh()
            reason = self.due()
            if reason is not None:
                await self.run_once(reason)

    def job(self) -> RetrainJob:
        s, c = self.settings, self.config
        staging = self.root / ".staging" / str(self.clock.now_ms())
        return RetrainJob(str(c.models_dir), c.symbol, c.timeframe, str(s.data.dir), s.exchange.name,
                          None, str(s.store.path), tuple(self._metas), c.train_bars, c.eval_bars,
                          c.min_improvement, c.threads, self.trainer, str(staging))

    async def run_once(self, reason: str, job: RetrainJob | None = None) -> list[Verdict]:
        """Run one job in a spawned process; swap in the candidates that won. Never raises."""
        self.running = True
        self.last_attempt_ms = self.clock.now_ms()
        job = job or self.job()
        log.info("retrain_started", reason=reason, models=list(job.model_names))
        try:
            verdicts = await self._run_child(job)
        except Exception as exc:  # timeout / crash of the child: counted, notified, trading unaffected
            self._count("failed")
            log.error("retrain_failed", reason=reason, error=repr(exc))
            self._notify("retrain failed", reason=reason, error=repr(exc))
            return []
        finally:
            self.running = False
        for v in verdicts:
            outcome = "failed" if v.error else ("swapped" if v.better else "kept")
            if v.better:
                await self._swap(v)
            self._count(outcome)
            entry = {"model": v.name, "outcome": outcome, "metric": v.metric, "running": v.incumbent,
                     "candidate": v.candidate, "reason": reason, "error": v.error}
            self.history.append(entry)
            log.info("retrain_verdict", **entry)
            self._notify(f"retrain {v.name}: {outcome}", **{k: e for k, e in entry.items() if k != "model"})
        shutil.rmtree(job.staging, ignore_errors=True)
        self.refresh()
        if any(v.better for v in verdicts):
            self.tracker.reset()
        return verdicts

    async def _run_child(self, job: RetrainJob) -> list[Verdict]:
        ctx = mp.get_context("spawn")
        recv, send = ctx.Pipe(duplex=False)
        self._proc = proc = ctx.Process(target=run_in_child, args=(job, send), name="neuralbot-retrain", daemon=True)
        proc.start()
        send.close()
        deadline = time.monotonic() + self.config.timeout_s
        delay = 0.05
        try:
            while not recv.poll():
                if not proc.is_alive() and not recv.poll():
                    raise RuntimeError(f"training process exited with code {proc.exitcode}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"training took longer than {self.config.timeout_s}s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            status, payload = recv.recv()
        finally:
            recv.close()
            self._kill()
        if status != "ok":
            raise RuntimeError(f"training process failed:\n{payload}")
        return list(payload)

    async def _swap(self, v: Verdict) -> None:
        from strategies.registry import load_model

        target = self.root / v.name
        archive = self.root / ".archive" / f"{v.name}-{self.clock.now_ms()}"
        archive.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.rename(archive)
        Path(v.candidate_dir).rename(target)
        model = await asyncio.to_thread(load_model, target)
        hosts = [h for h in self.hosts if _trades(h, self.config.symbol, self.config.timeframe)]
        for host in hosts:  # on the event loop, between bars: the next bar predicts with the new model
            if "symbol" in inspect.signature(host.swap_model).parameters:
                host.swap_model(v.name, model, symbol=self.config.symbol)
            else:
                host.swap_model(v.name, model)
        log.info("model_swapped", model=v.name, archived=str(archive), hosts=len(hosts))

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.retrain(outcome)

    def _notify(self, title: str, **fields: Any) -> None:
        if self.notifier is not None:
            self.notifier.notify("retrain", title, **fields)
