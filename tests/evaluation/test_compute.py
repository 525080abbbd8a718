"""Research tasks give the same answer serially and as Ray tasks: real models, real data."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from bot.evaluation.compute import Compute, ComputeConfig
from bot.evaluation.schedule import WalkForwardConfig
from bot.evaluation.walkforward import WalkForwardResult, walk_forward
from strategies.features.history import load_history
from strategies.models.spec import ModelSpec
from tests.netns import loopback_only, require_netns
from tests.paths import REPO

T = TypeVar("T")

TINY = [
    ModelSpec(name="gbm", kind="gbm", preset="gbm", window=24, gbm_max_iter=5, gbm_lags=(0, 1)),
    ModelSpec(name="lstm", kind="lstm", preset="small", window=24, epochs=1, hidden=(8,), dense=(8,),
              max_train_windows=200),
]


def _square_plus(x: int, shared: dict[str, int]) -> int:
    return x * x + shared["k"]


def _niceness() -> int:
    return os.nice(0)


def _die_once(marker: str) -> int:
    """Kill the worker running it the first time (a crashed node); answer on a retry."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return 7


@dataclass(frozen=True)
class Handle:
    index: int


class HandleCompute(Compute):
    """Serial, except that what is shared travels to a task as a handle: a task that was handed a
    large array itself (instead of the shared copy) is caught."""

    def __init__(self, progress: bool = False) -> None:
        super().__init__(ComputeConfig(), progress=progress)
        self.values: list[object] = []
        self.tasks: list[tuple[object, ...]] = []

    def share(self, value: T) -> T:
        self.values.append(value)
        return Handle(len(self.values) - 1)  # type: ignore[return-value]

    def map(self, fn: Callable[..., T], items: Sequence[tuple[Any, ...]], desc: str = "",
            on_result: Callable[[int, T], None] | None = None, bar: bool = True) -> list[T]:
        for args in items:
            for a in args:
                big = isinstance(a, np.ndarray) and a.size > 1000
                big |= isinstance(a, dict) and any(isinstance(v, np.ndarray) and v.size > 1000 for v in a.values())
                assert not big, f"{fn.__name__}: a task carries a large array itself"
        self.tasks += items
        opened = [tuple(self.values[a.index] if isinstance(a, Handle) else a for a in args) for args in items]
        return super().map(fn, opened, desc, on_result, bar)


def test_walk_forward_puts_the_data_in_the_store_once(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    history = load_history(data_dir, "BTC/USDT", "1h", "2019-01-01", "2019-03-01")
    cfg = WalkForwardConfig(min_train_days=30, retrain_every="10d", cache_dir=None)
    compute = HandleCompute()
    res = walk_forward(history, cfg, TINY, progress=False, compute=compute)
    n_folds = len(res.folds)
    assert n_folds >= 2 and len(compute.tasks) == n_folds * len(TINY)
    # the bar times and the one feature matrix (both models read the default features): one handle each,
    # the same in every task; each model's labels: one handle, the same in its folds
    ts_handles = {t[3] for t in compute.tasks}
    feature_handles = {t[1] for t in compute.tasks}
    assert len(ts_handles) == 1 and len(feature_handles) == 1
    assert len({t[2] for t in compute.tasks}) == len(TINY)
    assert len(compute.values) == 1 + 1 + len(TINY)
    serial = walk_forward(history, cfg, TINY, progress=True)
    assert all(np.array_equal(serial.forecasts[n].p, f.p) for n, f in res.forecasts.items())
    err = capsys.readouterr().err  # the folds' bar counted every (model, fold) fit as it finished
    assert "walk-forward BTC/USDT 1h: 100%" in err and f"{len(compute.tasks)}/{len(compute.tasks)}" in err


def test_serial_map_keeps_input_order_and_reports_each_result() -> None:
    seen: list[int] = []
    with Compute(ComputeConfig(), progress=False) as c:
        out = c.map(_square_plus, [(i, c.share({"k": 1})) for i in range(5)], on_result=lambda i, v: seen.append(i))
    assert out == [1, 2, 5, 10, 17] and seen == [0, 1, 2, 3, 4]


RAY_WALK_FORWARD = """
import os
import sys
import numpy as np
import ray
from bot.evaluation.compute import Compute, ComputeConfig
from bot.evaluation.walkforward import walk_forward
from strategies.features.history import load_history
from tests.evaluation.test_compute import CPCV, TINY, WF, _die_once, _niceness, _square_plus, flat

history = load_history(sys.argv[1], "BTC/USDT", "1h", "2019-01-01", "2019-05-01")
with Compute(ComputeConfig(backend="ray", cpus=2), progress=False) as c:
    assert c.map(_square_plus, [(i, c.share({"k": 2})) for i in range(6)]) == [2, 3, 6, 11, 18, 27]
    # the workers run at the driver's CPU priority (Ray's default niceness 15 starves them on a busy machine)
    assert c.map(_niceness, [()] * 2) == [os.nice(0)] * 2, c.map(_niceness, [()] * 2)
    # a task whose worker dies is run again (max_retries), and answers; without retries it fails
    assert c.map(_die_once, [(sys.argv[2] + ".died",)]) == [7]
    with Compute(ComputeConfig(backend="ray", cpus=2, max_retries=0), progress=False) as once:
        try:
            once.map(_die_once, [(sys.argv[2] + ".died-again",)])
            raise SystemExit("a crashed task without retries returned")
        except ray.exceptions.WorkerCrashedError:
            pass
    res = walk_forward(history, WF, TINY, progress=False, compute=c)
    paths = walk_forward(history, CPCV, TINY, progress=False, compute=c)
np.savez(sys.argv[2], **flat(res), **flat(paths))
"""
WF = WalkForwardConfig(min_train_days=60, retrain_every="30d", cache_dir=None)
CPCV = WF.model_copy(update={"splitter": "cpcv", "cpcv_groups": 4, "cpcv_test_groups": 2})


def flat(res: WalkForwardResult) -> dict[str, np.ndarray]:
    """Every forecast array of a walk-forward (each CPCV path's too), by a name that says which."""
    paths = res.paths or [res.forecasts]
    tag = "cpcv" if res.paths else "wf"
    return {f"{tag}{j}.{n}.{k}": getattr(f, k) for j, p in enumerate(paths) for n, f in p.items()
            for k in ("ts", "p", "fold")}


@pytest.mark.slow
def test_walk_forward_and_cpcv_on_ray_equal_serial(data_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    require_netns()
    out = tmp_path / "ray.npz"
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY_AUTH_MODE="disabled")
    proc = subprocess.run(loopback_only([sys.executable, "-c", RAY_WALK_FORWARD, str(data_dir), str(out)]),
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = load_history(data_dir, "BTC/USDT", "1h", "2019-01-01", "2019-05-01")
    serial = {**flat(walk_forward(history, WF, TINY, progress=False)),
              **flat(walk_forward(history, CPCV, TINY, progress=False))}
    assert sum(k.startswith("cpcv") for k in serial) == 3 * 3 * 3  # 3 paths x (2 models + ensemble) x 3
    with np.load(out) as on_ray:
        assert set(on_ray.files) == set(serial)
        for key, value in serial.items():
            assert np.array_equal(value, on_ray[key]), key  # to the last digit
