"""Where research work runs: in this process, on a local Ray, or on a Ray cluster.

``[compute] backend = "serial" | "ray"``. With Ray and no ``address`` the command
starts a local Ray with ``cpus`` workers (a bare machine needs no cluster);
``address = "ray://host:10001"`` (or ``--ray-address``) runs the same tasks on an
existing cluster and nothing else changes. Large inputs are put into the object
store once (:meth:`Compute.share`) and every task reads them from there.

Results do not depend on the backend: every task is a pure function of its
arguments (seeds are part of them), and :meth:`Compute.map` returns results in the
order of its inputs. A task that fails because its worker died is retried by Ray
(``max_retries``); an exception raised by the task itself is not retried.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field

from bot.config.section import Section

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]


class ComputeConfig(Section):
    """``[compute]``: where walk-forward folds and search trials run."""

    backend: Literal["serial", "ray"] = "serial"
    address: str | None = None  # a Ray cluster, e.g. "ray://host:10001"; None = start a local Ray
    cpus: int = Field(2, ge=1, le=1024)  # local Ray's workers (and trials asked from the sampler at once)
    max_retries: int = Field(2, ge=0, le=10)  # re-runs of a task whose worker died


class Compute:
    """Maps a function over inputs, serially or as Ray tasks; use as a context manager."""

    def __init__(self, cfg: ComputeConfig, progress: bool = True) -> None:
        self.cfg = cfg
        self.progress = progress
        self._ray: Any = None
        self._started_ray = False

    @property
    def parallelism(self) -> int:
        return self.cfg.cpus

    def __enter__(self) -> Compute:
        if self.cfg.backend == "ray":
            import ray  # deferred: a heavy dependency only the Ray backend needs

            self._ray = ray
            if not ray.is_initialized():
                env = {"env_vars": {"PYTHONPATH": os.pathsep.join(
                    p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}}
                if self.cfg.address:
                    ray.init(address=self.cfg.address, runtime_env=env, log_to_driver=False)
                else:  # workers at this process's CPU priority, as the serial path runs (Ray's default
                    # niceness 15 leaves them only what a busy machine's other processes do not take)
                    ray.init(num_cpus=self.cfg.cpus, include_dashboard=False, log_to_driver=False,
                             runtime_env=env, _system_config={"worker_niceness": os.nice(0)})
                self._started_ray = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False

    def share(self, value: T) -> T:
        """``value`` placed once where every task can read it (the Ray object store)."""
        return self._ray.put(value) if self._ray is not None else value  # type: ignore[no-any-return]

    def map(self, fn: Callable[..., T], items: Sequence[tuple[Any, ...]], desc: str = "",
            on_result: Callable[[int, T], None] | None = None, bar: bool = True) -> list[T]:
        """``[fn(*args) for args in items]`` in input order; ``on_result`` as each one finishes.
        A progress bar counts them as they finish unless ``bar`` is off (the caller shows its own)."""
        from tqdm.auto import tqdm  # deferred: the config imports this module, and needs no tqdm

        out: list[Any] = [None] * len(items)
        done = tqdm(total=len(items), desc=desc or None, disable=not (self.progress and bar and items))
        try:
            for i, value in self._run(fn, items):
                out[i] = value
                if on_result is not None:
                    on_result(i, value)
                done.update(1)
        finally:
            done.close()
        return out

    def _run(self, fn: Callable[..., T], items: Sequence[tuple[Any, ...]]) -> Iterable[tuple[int, T]]:
        if self._ray is None:
            for i, args in enumerate(items):
                yield i, fn(*args)
            return
        ray = self._ray
        task = ray.remote(max_retries=self.cfg.max_retries, num_cpus=1)(fn)
        pending = {task.remote(*args): i for i, args in enumerate(items)}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                yield pending.pop(ref), ray.get(ref)
