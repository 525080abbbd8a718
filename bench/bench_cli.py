"""What a user waits for: whole ``neuralbot`` processes, beside a bare ``python`` process.

    .venv/bin/python bench/bench_cli.py [--repeat N] [--only help,status,ma,neural] [--no-precompile]

Each row starts a fresh process and times it to its first line of output (``first``) and to
its exit (``total``); ``min`` and ``median`` over ``--repeat`` runs. The ratio column divides the
median total by the baseline's, a bare ``python -c "print()"`` timed in the same run, so figures
from a loaded machine stay comparable.

``--against DIR`` also times every row with the code of another checkout (``git worktree add
DIR <commit>``; it runs as ``python -m bot`` from DIR with this venv), interleaved with this
tree's runs, and adds the speed-up of this tree over it (its median / ours, first line for
help and status, total for the rest).

* ``help``: ``neuralbot --help``;
* ``status``: ``neuralbot status`` of a seeded store with a ``kind = "neural"`` config;
* ``ma``: ``neuralbot backtest`` of the SMA(20/50) cross over BTC/USDT 1h 2017-2021, SQLite store;
* ``neural``: ``neuralbot backtest`` of the default five-model ``neural`` strategy over the same
  span (models fitted on a small slice first, not timed: inference cost does not depend on
  how well they were trained).

``--nautilus PYTHON`` also times ``bench/peers/nautilus_sma.py`` (the same SMA(20/50) cross on the same
candles, run on nautilus_trader; PYTHON is an interpreter that has it installed, not a dependency of
this project: e.g. ``python3 -m venv /tmp/nt && /tmp/nt/bin/pip install nautilus_trader``) interleaved
with the rest, and prints how many times faster our ``ma`` row is (the issue's ">= 1.8x faster than
nautilus_trader", judged on this machine, in this run).

Byte code: before timing, the packages of this tree (and of ``--against DIR``) are compiled into
their ``__pycache__`` (``python -m compileall bot strategies risk``), so every row runs from ``.pyc``
files as a user's second and later runs do (``pip install -e`` compiles nothing: Python writes the
``.pyc`` on first import, unless ``PYTHONDONTWRITEBYTECODE`` is set, as on the agents' machines, where
every process would otherwise recompile our ~100 modules from source, ~0.1 s of a ``status``).
``--no-precompile`` skips it and times whatever ``__pycache__`` holds (the cold path when empty).

Targets (issue #18): help and status first line <= 0.3 s; ma <= 1.5 s; neural <= 10 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
BIN = Path(sys.executable).parent
TARGETS = {"help": 0.3, "status": 0.3, "ma": 1.5, "neural": 10.0}
PEER_TARGET = 1.8  # the ma row at least this many times faster than nautilus_trader's whole process
CANDLES = DATA / "ohlcv" / "binance" / "BTC_USDT-1h.csv.gz"
SPAN = ["--from", "2017-08-17", "--to", "2022-01-01"]


def timed(argv: list[str], cwd: Path = REPO) -> tuple[float, float, float]:
    """(seconds to the first line of stdout, seconds to exit, CPU seconds) of one fresh process."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd, env=env)
    assert proc.stdout is not None
    proc.stdout.readline()
    first = time.perf_counter() - t0
    _, err = proc.communicate(timeout=900)
    total = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return first, total, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


PACKAGES = ("bot", "strategies", "risk")  # pyproject's [tool.setuptools.packages.find]


def precompile(tree: Path) -> None:
    """Write the ``.pyc`` of ``tree``'s packages, as a user's first run would (see the docstring)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", *PACKAGES], cwd=tree, check=True,
                   stdout=subprocess.DEVNULL)


def write_configs(tmp: Path) -> dict[str, Path]:
    from tests.cli.test_status import seed_store

    asyncio.run(seed_store(tmp / "status.sqlite"))
    common = f'[data]\ndir = "{DATA}"\n\n[backtest]\nsymbols = ["BTC/USDT"]\ntimeframe = "1h"\n'
    out = {}
    for name, strategy in {
        "status": 'kind = "neural"\nparams = { threshold = 0.6 }',
        "ma": 'kind = "ma_crossover"\nparams = { fast = 20, slow = 50 }',
        "neural": f'kind = "neural"\nparams = {{ models_dir = "{tmp / "models"}" }}',
    }.items():
        store = tmp / ("status.sqlite" if name == "status" else f"{name}.sqlite")
        path = tmp / f"{name}.toml"
        path.write_text(f'{common}\n[store]\npath = "{store}"\n\n[[strategies]]\nname = "{name}"\n{strategy}\n')
        out[name] = path
    return out


def save_default_models(models_dir: Path) -> None:
    """The five default models, fitted briefly (``bench_engine.quick_default_models``), saved."""
    from bench_engine import quick_default_models

    from strategies.features.compute import DEFAULT_SPEC
    from strategies.models.registry import model_dir, save_model

    _, models = quick_default_models()
    for name, model in models.items():
        save_model(model, model_dir(models_dir, "BTC/USDT", "1h", name), DEFAULT_SPEC)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--only", default="help,status,ma,neural")
    ap.add_argument("--against", metavar="DIR", type=Path, help="another checkout to time beside this one")
    ap.add_argument("--nautilus", metavar="PYTHON", help="an interpreter with nautilus_trader: time its SMA cross too")
    ap.add_argument("--no-precompile", action="store_true", help="do not compile the packages to .pyc first")
    args = ap.parse_args()
    if not args.no_precompile:
        for tree in (REPO, *([args.against] if args.against else [])):
            precompile(tree)
    rows = [r for r in args.only.split(",") if r]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        configs = write_configs(tmp)
        if "neural" in rows:
            save_default_models(tmp / "models")
        argv = {
            "help": ["--help"],
            "status": ["status", "--config", str(configs["status"])],
            "ma": ["backtest", "--config", str(configs["ma"]), *SPAN],
            "neural": ["backtest", "--config", str(configs["neural"]), *SPAN],
        }
        cmds = {"baseline": ([sys.executable, "-c", "print()"], REPO),
                **{r: ([str(BIN / "neuralbot"), *argv[r]], REPO) for r in rows}}
        if args.against:
            cmds |= {f"{r}@{args.against.name}": ([sys.executable, "-m", "bot", *argv[r]], args.against)
                     for r in rows}
        if args.nautilus:
            cmds["nautilus_trader ma"] = ([args.nautilus, str(REPO / "bench" / "peers" / "nautilus_sma.py"),
                                          str(CANDLES)], REPO)
        results: dict[str, list[tuple[float, float, float]]] = {}
        for i in range(args.repeat):  # interleaved, so a burst of load hits every row alike
            for name, (cmd, cwd) in cmds.items():
                if name.startswith("neural") and i >= 2:
                    continue  # two runs of the long row are enough
                results.setdefault(name, []).append(timed(cmd, cwd))
    base = statistics.median(t for _, t, _ in results["baseline"])
    def judged(name: str) -> float:  # what the target is about: first line, or the whole run
        runs = results[name]
        return statistics.median([f for f, _, _ in runs] if name.split("@")[0] in ("help", "status")
                                 else [t for _, t, _ in runs])

    width = max(10, *(len(n) + 2 for n in results))
    print(f"{'row':<{width}}{'first min':>10}{'first med':>10}{'total min':>10}{'total med':>10}"
          f"{'x baseline':>11}{'cpu med':>9}{'target':>8}  met" + ("  speed-up" if args.against else ""))
    for name, runs in results.items():
        first, total, cpu = [f for f, _, _ in runs], [t for _, t, _ in runs], [c for _, _, c in runs]
        target = TARGETS.get(name)
        met = "-" if target is None else ("yes" if judged(name) <= target else "NO")
        twin = f"{name}@{args.against.name}" if args.against else ""
        gain = f"{judged(twin) / judged(name):>8.2f}x" if twin in results else ""
        print(f"{name:<{width}}{min(first):>10.3f}{statistics.median(first):>10.3f}{min(total):>10.3f}"
              f"{statistics.median(total):>10.3f}{statistics.median(total) / base:>11.1f}"
              f"{statistics.median(cpu):>9.3f}{'' if target is None else f'{target:.1f}':>8}  {met:<3}{gain}")
    print(f"(seconds; {args.repeat} runs each, {'source' if args.no_precompile else '.pyc precompiled'}; neural at most 2; ratio = median total / baseline median total;"
          f" cpu = user + system seconds of the process; load average {os.getloadavg()[0]:.1f}"
          + ("; speed-up = the other checkout's median / this one's" if args.against else "") + ")")
    if "nautilus_trader ma" in results and "ma" in results:
        ratio = judged("nautilus_trader ma") / judged("ma")
        print(f"ma vs nautilus_trader, same run: {ratio:.2f}x faster (median totals; target >= {PEER_TARGET}x: "
              f"{'met' if ratio >= PEER_TARGET else 'NOT met'})")


if __name__ == "__main__":
    sys.path[:0] = [str(REPO), str(REPO / "bench")]
    main()
