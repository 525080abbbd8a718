"""Benchmark the default ensemble on BTC/USDT 1h 2017-2021 on this machine.

Prints, per model: training time, inference time per window (one window per
call, and batched over the test split), forward FLOPs per window (counted with
``torch.utils.flop_counter``), achieved FLOP/s in training and batched inference,
and the same run's plain ``torch.matmul`` ceiling. Also the test-split accuracy.

    .venv/bin/python bench/bench_models.py [--data-dir ../shared/data] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from strategies.features.compute import get_spec  # noqa: E402
from strategies.features.history import load_history  # noqa: E402
from strategies.models.spec import TrainConfig  # noqa: E402
from strategies.models.torch_base import TorchModel  # noqa: E402
from strategies.training.pipeline import Dataset, prepare, train_model  # noqa: E402


def matmul_ceiling(n: int = 1024, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def lstm_flops(module: torch.nn.Module, steps: int) -> int:
    """Analytic multiply-add FLOPs of every nn.LSTM (the flop counter does not see fused LSTM ops)."""
    total = 0
    for m in module.modules():
        if isinstance(m, torch.nn.LSTM):
            dirs = 2 if m.bidirectional else 1
            i, h = m.input_size, m.hidden_size
            total += dirs * steps * (2 * 4 * h * (i + h) + 10 * h)  # gates matmuls + pointwise
    return total


def forward_flops(model: TorchModel, window: np.ndarray) -> int:
    """FLOPs of one forward pass; train mode so the transformer's fused inference path is counted."""
    x = torch.from_numpy(model.normalizer.transform(window))
    model.module.train()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model.module(x)
    model.module.eval()
    return int(fc.get_total_flops()) + lstm_flops(model.module, x.shape[1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--threads", type=int, default=TrainConfig().threads)
    ap.add_argument("--start", default="2017-01-01")
    ap.add_argument("--end", default="2022-01-01")
    ap.add_argument("--single-reps", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = TrainConfig(data_dir=args.data_dir, start=args.start, end=args.end, threads=args.threads)

    ceiling = matmul_ceiling()
    t0 = time.perf_counter()
    hist = load_history(cfg.data_dir, cfg.symbol, cfg.timeframe, cfg.start, cfg.end)
    ds = Dataset.build(hist, get_spec("default"))
    prep_s = time.perf_counter() - t0
    print(f"BTC/USDT 1h rows={len(hist)} features={ds.spec.n_features} (load+features {prep_s:.1f}s); "
          f"torch threads={args.threads}; matmul ceiling {ceiling / 1e9:.1f} GFLOP/s")

    rows = []
    total_train = 0.0
    for spec in cfg.models:
        res = train_model(spec, ds)
        total_train += res.seconds
        model = res.model
        p = prepare(ds, spec)
        test = p.part(p.split.test)
        x1 = test.x(slice(0, 1))
        model.predict(x1)
        times = []
        for i in range(args.single_reps):
            xi = test.x(slice(i, i + 1))
            t = time.perf_counter()
            model.predict(xi)
            times.append(time.perf_counter() - t)
        single = statistics.median(times)
        t = time.perf_counter()
        model.predict_windows(test)
        batched = (time.perf_counter() - t) / len(test)
        flops = forward_flops(model, x1) if isinstance(model, TorchModel) else 0
        n_train = len(p.part(p.split.train)) // spec.stride
        train_flops = 3 * flops * n_train * res.report.epochs_run
        fit_s = res.report.seconds
        epochs = f"{res.report.epochs_run}/{res.report.best_epoch}"
        rows.append((spec.name, res.seconds, epochs, single, batched, flops,
                     train_flops / fit_s if flops else 0.0, flops / batched if flops else 0.0,
                     res.metrics["test"]["accuracy"], res.metrics["test"]["auc"],
                     res.metrics["test"]["base_rate"]))
        print(f"  {spec.name}: trained in {res.seconds:.1f}s", flush=True)

    hdr = (f"{'model':<12}{'train s':>8}{'ep/best':>8}{'1-win ms':>9}{'batch us/win':>13}{'MFLOP/win':>10}"
           f"{'train GF/s':>11}{'infer GF/s':>11}{'% ceil':>7}{'test acc':>9}{'auc':>6}{'base':>6}")
    print("\n" + hdr + "\n" + "-" * len(hdr))
    for name, tr, ep, single, batched, flops, tr_fs, inf_fs, acc, auc, base in rows:
        mf = f"{flops / 1e6:10.3f}" if flops else f"{'-':>10}"
        gf = f"{tr_fs / 1e9:11.2f}{inf_fs / 1e9:11.2f}{100 * inf_fs / ceiling:7.1f}" if flops else \
            f"{'-':>11}{'-':>11}{'-':>7}"
        print(f"{name:<12}{tr:8.1f}{ep:>8}{single * 1e3:9.2f}{batched * 1e6:13.1f}{mf}{gf}"
              f"{acc:9.3f}{auc:6.3f}{base:6.3f}")
    verdict = "OK" if total_train <= 300 else "OVER"
    print(f"\ntotal training time {total_train:.1f}s (target <= 300s: {verdict}); "
          f"matmul ceiling {ceiling / 1e9:.1f} GFLOP/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
