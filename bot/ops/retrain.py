"""Background retraining with hot swap, for every series the strategies trade.

The series are the (symbol, timeframe) pairs of the model holders the running
strategies predict with (:class:`strategies.predictor.ModelHolder`, from
``Strategy.model_holders``, e.g. the neural ensemble's) that have models under
``<models_dir>/<SYMBOL>_<timeframe>/``. Per series, triggers
(checked every ``check_interval_s``, at most one job at a time, and no sooner than
``min_interval_hours`` after that series' previous attempt):

* schedule: a ``[walkforward] retrain_every`` boundary (e.g. a new quarter) has passed
  since the newest model was trained: the cadence walk-forward evaluation measured;
* accuracy drop: the rolling hit rate of the hosts' direction calls
  (``Signal.probability`` vs the next bar's close) falls more than
  ``accuracy_drop_pct`` percent (relative) below the rate measured over the first
  full window after the models were loaded or swapped;
* expiry: a model is older than ``max_model_age_days``. An expired model that a
  finished retrain did not replace (no better candidate, or the job failed) opens
  no more positions: its hosts hold their entries on that series (exits and stops
  work as before) until a fresh model is swapped in; ``/health`` says so.

A job runs in a separate *spawned* process (``multiprocessing``), so trading never
stalls on training. For each registry model it fits a candidate with the same
spec on the recent history minus the last ``eval_bars`` bars (all of it: the last
``[walkforward] val_fraction`` of those early-stops and calibrates), then scores
candidate and running model on the held-out bars (Brier score for classifiers,
MSE for regressors; lower is better). Only a candidate that beats the running
model by more than ``min_improvement`` is saved to the registry (the old model is
archived under ``.archive/``) and swapped into every holder of that series that has
a member of that name; otherwise nothing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog

from bot.config.ops import RetrainConfig
from bot.core.clock import Clock, LiveClock
from bot.core.events import Candle, Signal
from bot.core.heap import freeze_long_lived
from bot.evaluation.schedule import retrain_due
from bot.ops.accuracy import AccuracyTracker
from bot.ops.retrain_job import DEFAULT_TRAINER, RetrainJob, Verdict, run_in_child
from strategies.models.registry_files import read_meta
from strategies.predictor import ModelHolder

log = structlog.get_logger(__name__)

# -- the daemon side -----------------------------------------------------------------------

def _created_ms(meta: dict[str, Any]) -> int:
    with contextlib.suppress(KeyError, ValueError):
        dt = datetime.strptime(meta["created_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        return int(dt.timestamp() * 1000)
    return 0


@dataclass(slots=True)
class SeriesState:
    """Retraining state of one traded series."""

    symbol: str
    timeframe: str
    root: Path  # <models_dir>/<SYMBOL>_<timeframe>
    tracker: AccuracyTracker
    metas: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_attempt_ms: int | None = None
    held: dict[str, str] = field(default_factory=dict)  # expired models a retrain did not replace -> why

    @property
    def key(self) -> str:
        return f"{self.symbol}@{self.timeframe}"


class Retrainer:
    def __init__(self, config: RetrainConfig, settings: Any, *, metrics: Any = None, notifier: Any = None,
                 holders: Iterable[ModelHolder] = (), clock: Clock | None = None, trainer: str = DEFAULT_TRAINER,
                 cadence: str | None = None) -> None:
        self.config = config
        self.cadence = cadence  # [walkforward] retrain_every; None: retrain only on triggers
        self.settings = settings
        self.metrics = metrics
        self.notifier = notifier
        self.holders = list(holders)
        self.clock = clock or LiveClock()
        self.trainer = trainer
        self.running = False
        self.history: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._proc: Any = None
        self._tracked = {h.owner for h in self.holders}  # the strategies whose calls are tracked
        self.series: dict[tuple[str, str], SeriesState] = {}
        for sym, tf in sorted({(h.symbol, h.timeframe) for h in self.holders}):
            root = Path(config.models_dir) / f"{sym.replace('/', '_')}_{tf}"
            tracker = AccuracyTracker(config.accuracy_window, config.accuracy_drop_pct, tf)
            self.series[(sym, tf)] = SeriesState(sym, tf, root, tracker)
        self.refresh()

    def _read_registry(self) -> dict[tuple[str, str], dict[str, dict[str, Any]]]:
        """Every traded series' model metadata as the registry says now (raises on a bad file)."""
        return {key: {p.parent.name: read_meta(p.parent) for p in sorted(st.root.glob("*/meta.json"))}
                for key, st in self.series.items()}

    def refresh(self, metas: dict[tuple[str, str], dict[str, dict[str, Any]]] | None = None) -> None:
        """Re-read the registry (or take ``metas`` read already); a held model that is no longer
        expired is released."""
        metas = self._read_registry() if metas is None else metas
        for key, st in self.series.items():
            st.metas = metas[key]
            expired = self._expired(st)
            if any(name not in expired for name in st.held):
                self._hold(st, {n: why for n, why in st.held.items() if n in expired})

    def reconfigure(self, config: RetrainConfig, cadence: str | None = None) -> None:
        """A reloaded ``[retrain]``: the registry is read first, so a file that cannot be read
        rejects the reload with nothing changed."""
        metas = self._read_registry()
        self.config, self.cadence = config, cadence
        for st in self.series.values():
            st.tracker.reconfigure(config.accuracy_window, config.accuracy_drop_pct)
        self.refresh(metas)

    # -- observation (engine listener / daemon) -------------------------------------------

    def observe(self, item: Any) -> None:
        if isinstance(item, Signal) and item.strategy in self._tracked:
            st = self.series.get((item.symbol, item.timeframe))
            if st is not None:
                st.tracker.signal(item)

    def observe_candle(self, candle: Candle) -> None:
        st = self.series.get((candle.symbol, candle.timeframe))
        if st is not None:
            st.tracker.candle(candle)

    def _ages(self, st: SeriesState) -> dict[str, float]:
        now = self.clock.now_ms()
        return {n: (now - _created_ms(m)) / 1000 for n, m in st.metas.items()}

    def _expired(self, st: SeriesState) -> set[str]:
        return {n for n, a in self._ages(st).items() if a > self.config.max_model_age_days * 86400}

    def model_ages(self) -> dict[str, float]:
        """Age in seconds of every model, keyed ``<symbol>@<timeframe>/<model>``."""
        return {f"{st.key}/{n}": a for st in self.series.values() for n, a in self._ages(st).items()}

    def model_report(self) -> dict[str, dict[str, Any]]:
        """Per series, per model: age, expiry and whether it is kept from opening positions."""
        max_age = self.config.max_model_age_days * 86400
        return {st.key: {n: {"age_s": round(a, 1), "expired": a > max_age,
                             "created_at": st.metas[n].get("created_at"),
                             "entries_blocked": n in st.held, **({"why": st.held[n]} if n in st.held else {})}
                         for n, a in self._ages(st).items()}
                for st in self.series.values() if st.metas}

    def due_series(self) -> list[tuple[SeriesState, str]]:
        """The series whose retrain should start now, each with why."""
        if self.running:
            return []
        now, out = self.clock.now_ms(), []
        for st in self.series.values():
            if not st.metas or (st.last_attempt_ms is not None
                                and now - st.last_attempt_ms < self.config.min_interval_hours * 3.6e6):
                continue
            ages = self._ages(st)
            if expired := sorted(self._expired(st)):
                out.append((st, f"expired: {', '.join(expired)}"))
            elif self.cadence is not None and retrain_due(now - int(min(ages.values()) * 1000), now, self.cadence):
                out.append((st, f"schedule: every {self.cadence}"))
            elif st.tracker.dropped():
                out.append((st, f"accuracy drop: {st.tracker.accuracy():.3f} vs baseline {st.tracker.baseline:.3f}"))
        return out

    def due(self) -> str | None:
        """Why a retrain should start now (the first due series), or ``None``."""
        return next((why for _, why in self.due_series()), None)

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
            for st, reason in self.due_series():
                await self.run_once(reason, [self.job(st)])

    def job(self, st: SeriesState) -> RetrainJob:
        s, c = self.settings, self.config
        staging = st.root / ".staging" / str(self.clock.now_ms())
        return RetrainJob(str(c.models_dir), st.symbol, st.timeframe, str(s.data.dir), s.exchange.name,
                          None, str(s.store.path), tuple(st.metas), c.train_bars, c.eval_bars,
                          c.min_improvement, c.threads, self.trainer, str(staging),
                          s.walkforward.val_fraction)

    def jobs(self) -> list[RetrainJob]:
        """One job per series that has registry models."""
        return [self.job(st) for st in self.series.values() if st.metas]

    async def run_once(self, reason: str, jobs: list[RetrainJob] | None = None) -> list[Verdict]:
        """Run each job (default: every series) in a spawned process; swap in the candidates
        that won; hold entries on expired models that were not replaced. Never raises."""
        out: list[Verdict] = []
        for job in self.jobs() if jobs is None else jobs:
            out += await self._run_series(self.series[(job.symbol, job.timeframe)], reason, job)
        return out

    async def _run_series(self, st: SeriesState, reason: str, job: RetrainJob) -> list[Verdict]:
        self.running = True
        st.last_attempt_ms = self.clock.now_ms()
        log.info("retrain_started", series=st.key, reason=reason, models=list(job.model_names))
        try:
            verdicts = await self._run_child(job)
        except Exception as exc:  # timeout / crash of the child: counted, notified, trading unaffected
            self._count("failed")
            log.error("retrain_failed", series=st.key, reason=reason, error=repr(exc))
            self._notify("retrain failed", series=st.key, reason=reason, error=repr(exc))
            verdicts = [Verdict(n, "", float("nan"), float("nan"), False, "", repr(exc)) for n in job.model_names]
            self._hold_unreplaced(st, verdicts)
            return []
        finally:
            self.running = False
        for v in verdicts:
            outcome = "failed" if v.error else ("swapped" if v.better else "kept")
            if v.better:
                await self._swap(st, v)
            self._count(outcome)
            entry = {"series": st.key, "model": v.name, "outcome": outcome, "metric": v.metric,
                     "running": v.incumbent, "candidate": v.candidate, "reason": reason, "error": v.error}
            self.history.append(entry)
            log.info("retrain_verdict", **entry)
            self._notify(f"retrain {st.key} {v.name}: {outcome}", **{k: e for k, e in entry.items() if k != "model"})
        shutil.rmtree(job.staging, ignore_errors=True)
        self.refresh()
        self._hold_unreplaced(st, verdicts)
        if any(v.better for v in verdicts):
            st.tracker.reset()
        return verdicts

    def _hold_unreplaced(self, st: SeriesState, verdicts: list[Verdict]) -> None:
        """Expired models that this attempt did not replace open no more positions."""
        max_days = self.config.max_model_age_days
        held = dict(st.held)
        for v in verdicts:
            if v.name in self._expired(st) and not v.better:
                why = v.error or f"candidate {v.metric} {v.candidate:.4f} vs running {v.incumbent:.4f}"
                held[v.name] = f"model {v.name} expired (older than {max_days:g} days), no better candidate ({why})"
        self._hold(st, held)

    def _hold(self, st: SeriesState, held: dict[str, str]) -> None:
        if held == st.held:
            return
        st.held = held
        reason = "; ".join(held.values()) or None
        for holder in self._holders_of(st):
            holder.hold(reason)
        if reason:
            log.warning("entries_held", series=st.key, reason=reason)
            self._notify(f"entries held on {st.key}", reason=reason)
        else:
            log.info("entries_released", series=st.key)
            self._notify(f"entries released on {st.key}")

    def _holders_of(self, st: SeriesState) -> list[ModelHolder]:
        return [h for h in self.holders if (h.symbol, h.timeframe) == (st.symbol, st.timeframe)]

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

    async def _swap(self, st: SeriesState, v: Verdict) -> None:
        # as above
        from strategies.models.registry import load_model

        target = st.root / v.name
        archive = st.root / ".archive" / f"{v.name}-{self.clock.now_ms()}"
        archive.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            target.rename(archive)
        Path(v.candidate_dir).rename(target)
        model = await asyncio.to_thread(load_model, target)
        # on the event loop, between bars: the next bar predicts with the new model
        took = sum(holder.swap(v.name, model) for holder in self._holders_of(st))
        freeze_long_lived()  # the new model is long-lived; the old one is the collector's again
        log.info("model_swapped", series=st.key, model=v.name, archived=str(archive), holders=took)

    def _count(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.retrain(outcome)

    def _notify(self, title: str, **fields: Any) -> None:
        if self.notifier is not None:
            self.notifier.notify("retrain", title, **fields)
