"""A prediction table's probabilities, computed on worker threads (finite replays).

:class:`TableFill` cuts every model's windows into chunks of :data:`CHUNK_BATCHES` batches
(the batches :meth:`~strategies.models.base.Model.predict_windows` cuts) and runs them on a
thread pool, chunk by chunk across the models (all models' first chunk, then their second,
...), so rows become final roughly in order. torch and numpy release the GIL while they
compute: the chunks run side by side, and beside a replay that reads the rows already final
(:meth:`wait`). A window's prediction does not depend on its batch's other windows nor on
the thread: the values are those of one batch loop, bit for bit (tested).

While chunks run, the interpreter's switch interval is 0.5 ms instead of 5: a worker that
finished an operation gets the GIL back from a busy replay loop within 0.5 ms, not 5 (at 5
ms, a background fill beside a Python loop ran at ~60 % of its speed; at 0.5 ms at ~100 %,
the loop ~4 % slower). The interval is restored when the last running fill has ended.

A chunk's error is raised by :meth:`wait` and :meth:`result` to the reader (no hang).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from strategies.features.windows import Windows, valid_ends
from strategies.models.base import PREDICT_BATCH, Model

CHUNK_BATCHES = 8  # batches per job of a fill's workers
FILL_SWITCH_INTERVAL = 0.0005

_lock = threading.Lock()
_running = 0  # fills with chunks still to run (the switch interval is theirs meanwhile)
_saved_interval = 0.005


def _started() -> None:
    global _running, _saved_interval
    with _lock:
        if _running == 0:
            _saved_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_saved_interval, FILL_SWITCH_INTERVAL))
        _running += 1


def _ended() -> None:
    global _running
    with _lock:
        _running -= 1
        if _running == 0:
            sys.setswitchinterval(_saved_interval)


class TableFill:
    """Every model's prediction of every full window of ``feats`` (NaN where none): ``out``,
    filled by ``workers`` threads (``workers <= 1``: on the caller's thread, before returning)."""

    def __init__(self, models: Mapping[str, Model], feats: np.ndarray, batch_size: int = PREDICT_BATCH,
                 workers: int = 1) -> None:
        self.out = {name: np.full(len(feats), np.nan) for name in models}
        self._step = batch_size * CHUNK_BATCHES
        self._batch = batch_size
        self._ends = {name: valid_ends(feats, None, m.window) for name, m in models.items()}
        self._futures: dict[str, list[Future[None]]] = {name: [] for name in models}
        self._ready = -1  # rows <= this are final in every model
        normalised = {name: m.normalizer.transform(feats) for name, m in models.items() if len(self._ends[name])}
        chunks = max((-(-len(e) // self._step) for e in self._ends.values()), default=0)
        jobs = [(name, models[name], normalised[name], c * self._step)
                for c in range(chunks) for name in normalised if c * self._step < len(self._ends[name])]
        self._pool: ThreadPoolExecutor | None = None
        self._slots = threading.Semaphore(max(1, workers))  # chunks computing at once
        self._held = False  # the reader holds a slot (see :meth:`wait`)
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                self._run(*job)
            self._ready = sys.maxsize
            return
        self._pool = ThreadPoolExecutor(min(workers, len(jobs)), thread_name_prefix="table-fill")
        self._left = len(jobs)
        _started()
        for job in jobs:
            future = self._pool.submit(self._run, *job)
            future.add_done_callback(self._done)
            self._futures[job[0]].append(future)
        self._pool.shutdown(wait=False)  # its threads end once the queue is done

    def _run(self, name: str, model: Model, normalised: np.ndarray, start: int) -> None:
        ends = self._ends[name][start:start + self._step]
        w = Windows(normalised, ends, np.full(len(ends), np.nan, dtype=np.float32), model.window)
        with self._slots:
            self.out[name][ends] = model.predict_normalised(w, self._batch)

    def _done(self, _: Future[None]) -> None:
        with _lock:
            self._left -= 1
            last = self._left == 0
        if last:
            _ended()

    def wait(self, row: int) -> None:
        """Return once row ``row`` is final in every model (at once when it already is)."""
        if row <= self._ready:
            return
        if not self._held:  # the reader's thread is busy too: one worker fewer while it runs
            self._held = self._slots.acquire(blocking=False)
        bound = sys.maxsize
        for name, ends in self._ends.items():
            i = int(np.searchsorted(ends, row))
            if i >= len(ends) or not self._futures[name]:
                continue  # no window at or after ``row``: already final
            c = i // self._step
            future = self._futures[name][c]
            if not future.done() and self._held:  # waiting: its slot is a worker's meanwhile
                self._slots.release()
                self._held = False
            future.result()  # raises the chunk's error
            bound = min(bound, int(ends[min((c + 1) * self._step, len(ends)) - 1]))
        self._ready = bound
        if bound == sys.maxsize and self._held:
            self._slots.release()
            self._held = False

    def result(self) -> dict[str, np.ndarray]:
        """``out``, once every chunk has run (raises the first chunk error)."""
        for futures in self._futures.values():
            for f in futures:
                f.result()
        self._ready = sys.maxsize
        return self.out

    def cancel(self) -> None:
        """Drop the chunks not started (the table is no longer read)."""
        for futures in self._futures.values():
            for f in futures:
                f.cancel()
