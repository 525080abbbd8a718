"""Research tasks give the same answer serially and as Ray tasks: real models, real data."""

from __future__ import annotations

import numpy as np
import pytest

from bot.evaluation.compute import Compute, ComputeConfig
from bot.evaluation.schedule import WalkForwardConfig
from bot.evaluation.walkforward import walk_forward
from strategies.history import load_history
from strategies.model_config import ModelSpec

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


@pytest.mark.slow
def test_walk_forward_on_ray_equals_serial(data_dir) -> None:
    pytest.importorskip("ray")
    history = load_history(data_dir, "BTC/USDT", "1h", "2019-01-01", "2019-05-01")
    cfg = WalkForwardConfig(min_train_days=60, retrain_every="30d", cache_dir=None)
    serial = walk_forward(history, cfg, TINY, progress=False)
    with Compute(ComputeConfig(backend="ray", cpus=2), progress=False) as c:
        assert c.map(_square_plus, [(i, c.share({"k": 2})) for i in range(6)]) == [2, 3, 6, 11, 18, 27]
        on_ray = walk_forward(history, cfg, TINY, progress=False, compute=c)
    assert serial.folds == on_ray.folds and set(serial.forecasts) == set(on_ray.forecasts)
    for name, f in serial.forecasts.items():
        g = on_ray.forecasts[name]
        assert np.array_equal(f.ts, g.ts) and np.array_equal(f.fold, g.fold)
        assert np.array_equal(f.p, g.p), name  # to the last digit
