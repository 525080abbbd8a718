"""Where a walk-forward fold's time goes: feature build, fit, calibration, prediction, per model.

    .venv/bin/python bench/bench_walkforward.py [--folds N] [--max-train-windows N] [--epochs N]

Runs the first ``--folds`` folds of the configured schedule (``[walkforward]`` defaults:
quarterly retraining after 730 days) over BTC/USDT 1h with the five default models, one
torch thread, doing what ``bot.evaluation.walkforward.fit_fold`` does with a timer around
each phase. Bounded by default (2 folds, at most 3,000 training windows and 2 epochs per
fit; the full 39-minute run uses 12,000 windows and each model's own epochs): fit time grows
about linearly with both, the other phases do not depend on them.

The table's last column divides each row by a fixed torch workload timed in the same run
(``baseline``: 200 float32 256x256 matmuls), so figures from a loaded machine compare.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.evaluation.schedule import WalkForwardConfig
from bot.evaluation.walkforward import make_folds, prepare_specs
from strategies.features.compute import DEFAULT_SPEC, compute_features
from strategies.features.history import load_history
from strategies.models.zoo import build_model
from strategies.training.targets import TargetSpec, compute_target
from strategies.features.windows import Normalizer, Windows, valid_ends

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def baseline() -> float:
    a = torch.randn(256, 256)
    t = time.perf_counter()
    for _ in range(200):
        a = torch.tanh(a @ a)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--max-train-windows", type=int, default=3000)
    ap.add_argument("--epochs", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    base = baseline()
    cfg = WalkForwardConfig(max_train_windows=args.max_train_windows, epochs=args.epochs)
    specs = prepare_specs(cfg, None)
    h = load_history(DATA, "BTC/USDT", "1h", "2017-01-01", "2022-01-01")
    ts = np.asarray(h.arrays["ts"], dtype=np.int64)
    t = time.perf_counter()
    feats = compute_features(h.arrays, DEFAULT_SPEC)
    feature_s = time.perf_counter() - t
    ends = valid_ends(feats, None, max(s.window for s in specs))
    folds = make_folds(ts, ends, cfg, max(s.horizon for s in specs))[: args.folds]
    times: dict[tuple[str, str], float] = defaultdict(float)
    for fold in folds:
        for spec in specs:
            y = compute_target(h.arrays["close"], TargetSpec("direction", spec.horizon))
            mk = lambda rows, w=spec.window: Windows(feats, rows, y[rows].astype(np.float32), w, ts[rows])
            lo, hi = int(fold.train[0]), int(fold.train[-1])
            t = time.perf_counter()
            torch.manual_seed(spec.seed)
            model = build_model(spec, feats.shape[1], Normalizer.fit(feats[lo - spec.window + 1 : hi + 1]))
            model.fit(mk(fold.train), mk(fold.val))
            t1 = time.perf_counter()
            model.calibrate(mk(fold.val))
            t2 = time.perf_counter()
            model.predict_windows(mk(fold.test))
            t3 = time.perf_counter()
            times[(spec.name, "fit")] += t1 - t
            times[(spec.name, "calibrate")] += t2 - t1
            times[(spec.name, "predict")] += t3 - t2
    n = max(len(folds), 1)
    per_fold = sum(times.values()) / n
    print(f"{len(folds)} folds (quarterly, expanding), {len(ts):,} BTC/USDT 1h bars, "
          f"<= {args.max_train_windows:,} training windows, {args.epochs} epochs, 1 thread\n")
    print(f"{'model':<12}{'phase':<11}{'s / fold':>10}{'share':>8}{'x baseline':>12}")
    print("-" * 53)
    print(f"{'baseline':<12}{'matmuls':<11}{base:>10.3f}{'':>8}{1.0:>12.1f}")
    print(f"{'(all)':<12}{'features':<11}{feature_s:>10.3f}{'(once)':>8}{feature_s / base:>12.1f}")
    for (name, phase), secs in times.items():
        s = secs / n
        print(f"{name:<12}{phase:<11}{s:>10.3f}{s / per_fold:>8.1%}{s / base:>12.1f}")
    for phase in ("fit", "calibrate", "predict"):
        s = sum(v for (_, p), v in times.items() if p == phase) / n
        print(f"{'(5 models)':<12}{phase:<11}{s:>10.3f}{s / per_fold:>8.1%}{s / base:>12.1f}")
    print(f"{'(5 models)':<12}{'fold':<11}{per_fold:>10.3f}{1.0:>8.1%}{per_fold / base:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
