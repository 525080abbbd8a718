"""Research tasks give the same answer serially and as Ray tasks: real models, real data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.evaluation.compute import Compute, ComputeConfig
from bot.evaluation.schedule import WalkForwardConfig
from bot.evaluation.walkforward import walk_forward
from strategies.features.history import load_history
from strategies.models.spec import ModelSpec
from tests.netns import loopback_only, require_netns
from tests.paths import REPO


TINY = [
    ModelSpec(name="gbm", kind="gbm", preset="gbm", window=24, gbm_max_iter=5, gbm_lags=(0, 1)),
    ModelSpec(name="lstm", kind="lstm", preset="small", window=24, epochs=1, hidden=(8,), dense=(8,),
              max_train_windows=200),
]


def _square_plus(x: int, shared: dict[str, int]) -> int:
    return x * x + shared["k"]


def test_serial_map_keeps_input_order_and_reports_each_result() -> None:
    seen: list[int] = []
    with Compute(ComputeConfig(), progress=False) as c:
        out = c.map(_square_plus, [(i, c.share({"k": 1})) for i in range(5)], on_result=lambda i, v: seen.append(i))
    assert out == [1, 2, 5, 10, 17] and seen == [0, 1, 2, 3, 4]


RAY_WALK_FORWARD = """
import sys
import numpy as np
from bot.evaluation.compute import Compute, ComputeConfig
from bot.evaluation.schedule import WalkForwardConfig
from bot.evaluation.walkforward import walk_forward
from strategies.features.history import load_history
from tests.evaluation.test_compute import TINY, _square_plus

history = load_history(sys.argv[1], "BTC/USDT", "1h", "2019-01-01", "2019-05-01")
cfg = WalkForwardConfig(min_train_days=60, retrain_every="30d", cache_dir=None)
with Compute(ComputeConfig(backend="ray", cpus=2), progress=False) as c:
    assert c.map(_square_plus, [(i, c.share({"k": 2})) for i in range(6)]) == [2, 3, 6, 11, 18, 27]
    res = walk_forward(history, cfg, TINY, progress=False, compute=c)
np.savez(sys.argv[2], **{f"{n}.{k}": getattr(f, k) for n, f in res.forecasts.items() for k in ("ts", "p", "fold")})
"""


@pytest.mark.slow
def test_walk_forward_on_ray_equals_serial(data_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    require_netns()
    out = tmp_path / "ray.npz"
    env = dict(os.environ, PYTHONPATH=str(REPO), RAY_AUTH_MODE="disabled")
    proc = subprocess.run(loopback_only([sys.executable, "-c", RAY_WALK_FORWARD, str(data_dir), str(out)]),
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = load_history(data_dir, "BTC/USDT", "1h", "2019-01-01", "2019-05-01")
    cfg = WalkForwardConfig(min_train_days=60, retrain_every="30d", cache_dir=None)
    serial = walk_forward(history, cfg, TINY, progress=False)
    with np.load(out) as on_ray:
        assert {k.split(".")[0] for k in on_ray.files} == set(serial.forecasts)
        for name, f in serial.forecasts.items():
            assert np.array_equal(f.ts, on_ray[f"{name}.ts"]) and np.array_equal(f.fold, on_ray[f"{name}.fold"])
            assert np.array_equal(f.p, on_ray[f"{name}.p"]), name  # to the last digit
