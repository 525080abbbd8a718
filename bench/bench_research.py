"""Walk-forward of the default models: serial vs local Ray vs a two-node Ray cluster on 127.0.0.1.

Prints a table: wall time, speed-up over serial (timed in the same run), the cores the
run used on average (CPU seconds of the driver and this bench's Ray workers over the
wall time: on a shared machine, what it got), whether the forecasts equal the serial
ones to the last digit, and the peak memory of a process (the serial driver; a Ray
worker). Ray's start-up (workers started, torch imported in each) is timed apart,
before the runs. The two-node cluster is two ``ray start`` processes on this machine
(a head and a worker joining it), driven through ``address``: the same job, its
overhead.

    .venv/bin/python bench/bench_research.py [--start 2019-01-01] [--end 2021-06-10]
        [--epochs 1] [--max-train-windows 3000] [--cpus 2] [--skip-cluster]

It runs itself in a private network namespace (``unshare -n``, root or user
namespaces needed), so Ray's traffic stays on loopback. The defaults are a bounded
slice (the full default walk-forward is ~39 min serially on 2 cores); pass ``--start
2017-08-17 --epochs 0`` for the full run (epochs 0 keeps each model's own).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bot.evaluation.compute import Compute, ComputeConfig  # noqa: E402
from bot.evaluation.schedule import WalkForwardConfig  # noqa: E402
from bot.evaluation.walkforward import walk_forward  # noqa: E402
from strategies.features.history import load_history  # noqa: E402


def _run(history, cfg, compute=None):  # type: ignore[no-untyped-def]
    """(wall seconds, cores used on average: CPU seconds of this process and the workers / wall, result)."""
    cpu, t = _cpu_seconds(), time.perf_counter()
    res = walk_forward(history, cfg, None, progress=True, compute=compute)
    wall = time.perf_counter() - t
    return wall, (_cpu_seconds() - cpu) / wall, res


def _same(a, b) -> bool:  # type: ignore[no-untyped-def]
    return set(a.forecasts) == set(b.forecasts) and all(
        np.array_equal(a.forecasts[k].p, b.forecasts[k].p) for k in a.forecasts)


def _ready(hold_s: float) -> int:
    """A task that imports what a fit needs, then holds its worker a moment (so each worker gets one)."""
    import bot.evaluation.walkforward  # noqa: F401  (torch, scikit-learn, the models)

    time.sleep(hold_s)
    return os.getpid()


def _warm(c: Compute, workers: int) -> float:
    """Start every worker and do its imports before the timed run; returns the seconds it took (a
    command pays this once; a bounded bench slice would otherwise be mostly start-up)."""
    t = time.perf_counter()
    c.map(_ready, [(1.0,)] * workers, desc="warm-up")
    return time.perf_counter() - t


def _self_peak_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ray_workers() -> list[Path]:
    """/proc entries of this bench's Ray workers (their environment carries this run's marker:
    other users' Ray processes on a shared machine are not counted)."""
    mark = f"BENCH_RUN={os.environ.get('BENCH_RUN', '')}".encode()
    out = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if ("default_worker.py" in cmd or cmd.startswith("ray::")) and mark in (proc / "environ").read_bytes():
                out.append(proc)
        except OSError:
            continue
    return out


def _worker_peak_mib() -> float:
    """Largest peak RSS (VmHWM) among this bench's Ray workers."""
    peak = 0.0
    for proc in _ray_workers():
        try:
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except OSError:
            continue
    return peak


def _cpu_seconds() -> float:
    """CPU seconds used so far by this process and this bench's Ray workers (user + system)."""
    import resource

    me = resource.getrusage(resource.RUSAGE_SELF)
    total = me.ru_utime + me.ru_stime
    tick = os.sysconf("SC_CLK_TCK")
    for proc in _ray_workers():
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
        except (OSError, IndexError, ValueError):
            continue
    return total


def _in_loopback_namespace() -> None:
    """Re-run this bench in a private network namespace: Ray binds the machine's primary
    address while any interface but loopback is up, and a bench talks over loopback only."""
    if os.environ.get("BENCH_NETNS") == "1":
        return
    argv = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", sys.executable, *sys.argv]
    env = dict(os.environ, BENCH_NETNS="1", BENCH_RUN=str(os.getpid()), RAY_AUTH_MODE="disabled")
    os.execvpe("unshare", argv, env)


def main() -> int:
    _in_loopback_namespace()
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--start", default="2019-01-01")
    ap.add_argument("--end", default="2021-06-10")
    ap.add_argument("--epochs", type=int, default=1, help="override every model's epochs (0: their own)")
    ap.add_argument("--max-train-windows", type=int, default=3000)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--skip-cluster", action="store_true")
    args = ap.parse_args()
    history = load_history(args.data_dir, "BTC/USDT", "1h", args.start, args.end)
    cfg = WalkForwardConfig(min_train_days=365, retrain_every="quarter", cache_dir=None,
                            epochs=args.epochs or None, max_train_windows=args.max_train_windows)
    rows = []
    serial_s, serial_cores, base = _run(history, cfg)
    tasks = len(base.folds) * (len(base.forecasts) - 1)
    rows.append(("serial (this process)", serial_s, serial_cores, True, _self_peak_mib()))
    startup = {}
    t = time.perf_counter()
    with Compute(ComputeConfig(backend="ray", cpus=args.cpus)) as c:
        startup["local Ray"] = time.perf_counter() - t + _warm(c, args.cpus)
        ray_s, cores, res = _run(history, cfg, c)
        rows.append((f"local Ray, {args.cpus} workers", ray_s, cores, _same(base, res), _worker_peak_mib()))
    ray_bin = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    if not args.skip_cluster and Path(ray_bin).exists():
        # workers at the driver's priority, as the local Ray runs them (Ray's default is niceness 15)
        env = dict(os.environ, PYTHONPATH=str(REPO), RAY_worker_niceness=str(os.nice(0)))
        port = "6391"
        half = str(max(1, args.cpus // 2))
        try:
            subprocess.run([ray_bin, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                            f"--num-cpus={half}", "--include-dashboard=false"], env=env, check=True,
                           capture_output=True, timeout=120)
            subprocess.run([ray_bin, "start", f"--address=127.0.0.1:{port}", "--node-ip-address=127.0.0.1",
                            f"--num-cpus={half}"], env=env, check=True, capture_output=True, timeout=120)
            t = time.perf_counter()
            with Compute(ComputeConfig(backend="ray", address=f"127.0.0.1:{port}", cpus=args.cpus)) as c:
                startup["cluster"] = time.perf_counter() - t + _warm(c, args.cpus)
                cl_s, cores, res = _run(history, cfg, c)
                rows.append(("Ray cluster, 2 nodes on 127.0.0.1", cl_s, cores, _same(base, res),
                             _worker_peak_mib()))
        finally:
            subprocess.run([ray_bin, "stop", "--force"], env=env, capture_output=True, timeout=120)
    print(f"\nwalk-forward BTC/USDT 1h {args.start} -> {args.end}: {len(base.folds)} folds x "
          f"{len(base.forecasts) - 1} models = {tasks} fits (epochs {args.epochs or 'own'}, "
          f"max_train_windows {args.max_train_windows}); {os.cpu_count()} cores\n")
    print(f"{'backend':<36} {'wall s':>8} {'vs serial':>10} {'cores used':>11} {'same forecasts':>15} "
          f"{'peak MiB/process':>17}")
    for name, secs, cores, same, mem in rows:
        print(f"{name:<36} {secs:>8.1f} {serial_s / secs:>9.2f}x {cores:>11.2f} {str(same):>15} {mem:>17.0f}")
    print(f"\nper fit (serial): {serial_s / max(1, tasks):.2f} s")
    print("start-up before the timed runs (connect, start the workers, import torch in each): "
          + ", ".join(f"{k} {v:.1f} s" for k, v in startup.items()))
    if len(rows) == 3:
        print(f"cluster overhead over local Ray: {rows[2][1] / rows[1][1] - 1:+.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
