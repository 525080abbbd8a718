"""``neuralbot hyperopt``: nested walk-forward that never reads the outer span, a ledger of
every trial, resume after a kill without re-running finished trials, serial == Ray."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bot.config.load import load_settings
from bot.evaluation.compute import Compute, ComputeConfig
from bot.evaluation.hyperopt import outer_start_ms, run_hyperopt
from bot.store.trials import read_trials
from strategies.features.history import load_history
from tests.netns import loopback_only, require_netns
from tests.paths import REPO


SEARCH = """
[backtest]
symbols = ["BTC/USDT"]
timeframe = "1h"
start = 2019-06-01
end = 2021-06-01

[walkforward]
retrain_every = "quarter"
min_train_days = 90

[hyperopt]
trials = {trials}
seed = 3
strategy = "ma"
outer_start = 2020-09-01
storage = "{storage}"
pbo_blocks = 4

[hyperopt.space]
"strategies.ma.params.fast" = {{ low = 5, high = 25, step = 5 }}
"strategies.ma.params.slow" = {{ low = 40, high = 120, step = 20 }}

[compute]
backend = "{backend}"
cpus = 2
"""


def _config(write_config, tmp_path: Path, trials: int = 4, backend: str = "serial", name: str = "c.toml") -> Path:
    return write_config(SEARCH.format(trials=trials, storage=tmp_path / f"{name}.optuna.sqlite",
                                      backend=backend), name=name)


def _run(args: list[str], timeout: float = 240, netns: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEURALBOT_")}
    env.update(PYTHONPATH=str(REPO), RAY_AUTH_MODE="disabled")
    argv = [sys.executable, "-m", "bot", *args]
    return subprocess.run(loopback_only(argv) if netns else argv, capture_output=True, text=True, cwd=REPO,
                          env=env, timeout=timeout)


def test_cli_search_reports_outer_scores_and_luck(write_config, tmp_path: Path) -> None:
    cfg = _config(write_config, tmp_path, trials=4)
    proc = _run(["hyperopt", "--config", str(cfg), "--json", "--no-progress", "--report", str(tmp_path / "rep")])
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)["BTC/USDT 1h"]
    assert out["trials"] >= 2
    assert "[[strategies]]" in out["best_toml"] and "params.fast" in out["best_toml"]
    assert 0.0 <= out["inner_stats"]["dsr"] <= 1.0 and out["inner_stats"]["n_trials"] >= out["trials"]
    assert out["pbo"] is not None and 0.0 <= out["pbo"]["pbo"] <= 1.0
    assert out["outer"]["first_ts"] >= out["outer_start_ts"]
    assert (tmp_path / "rep" / "index.html").exists() and list((tmp_path / "rep").glob("trials-*.png"))
    rows = read_trials(tmp_path / "bot.sqlite")
    inner = [r for r in rows if r["span"] == "inner"]
    outer = [r for r in rows if r["span"] == "outer"]
    assert len(inner) == out["trials"] and len(outer) == 1
    assert all(r["data_to"] < out["outer_start_ts"] for r in inner)  # the search never scored the outer span
    assert outer[0]["data_from"] >= out["outer_start_ts"]
    assert outer[0]["params"] == out["best_params"]


def test_search_never_reads_the_outer_span(write_config, tmp_path: Path, data_dir: Path) -> None:
    """Poison every outer bar: the inner trials (and so the chosen configuration) do not change."""
    results = []
    for k, poison in enumerate((False, True)):
        settings = load_settings(_config(write_config, tmp_path, trials=3, name=f"p{k}.toml"))
        settings = settings.model_copy(update={"store": settings.store.model_copy(
            update={"path": tmp_path / f"ledger{k}.sqlite"})})
        history = load_history(data_dir, "BTC/USDT", "1h", "2019-06-01", "2021-06-01")
        if poison:
            ts = history.arrays["ts"]
            late = ts >= outer_start_ms(settings.hyperopt, ts)
            rng = np.random.default_rng(0)
            for key in ("open", "high", "low", "close"):
                history.arrays[key][late] *= rng.uniform(0.5, 1.5, int(late.sum()))
            history.arrays["high"][late] = np.maximum.reduce([history.arrays[c][late] for c in
                                                             ("open", "high", "low", "close")])
            history.arrays["low"][late] = np.minimum.reduce([history.arrays[c][late] for c in
                                                            ("open", "high", "low", "close")])
        with Compute(ComputeConfig(), progress=False) as compute:
            results.append(run_hyperopt(settings, history, compute, progress=False))
        results[-1].ledger = read_trials(tmp_path / f"ledger{k}.sqlite", span="inner")
    clean, poisoned = results
    assert clean.best_params == poisoned.best_params
    assert [r["returns"] for r in clean.ledger] == [r["returns"] for r in poisoned.ledger]
    assert clean.outer != poisoned.outer  # the outer span did change, and only the outer score saw it


def test_killed_search_resumes_without_rerunning_finished_trials(write_config, tmp_path: Path) -> None:
    cfg = _config(write_config, tmp_path, trials=8)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEURALBOT_")}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.Popen([sys.executable, "-m", "bot", "hyperopt", "--config", str(cfg), "--no-progress"],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ledger = tmp_path / "bot.sqlite"
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if ledger.exists() and len(read_trials(ledger, span="inner")) >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the search ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    before = read_trials(ledger, span="inner")
    assert 2 <= len(before) < 8
    done = _run(["hyperopt", "--config", str(cfg), "--json", "--no-progress"])
    assert done.returncode == 0, done.stderr
    after = read_trials(ledger, span="inner")
    hashes = [r["params_hash"] for r in after]
    assert len(hashes) == len(set(hashes)), "a finished trial was run again"
    assert after[: len(before)] == before
    assert json.loads(done.stdout)["BTC/USDT 1h"]["trials"] == len(after)


@pytest.mark.slow
def test_serial_and_ray_give_identical_results(write_config, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    require_netns()  # Ray binds the machine's address unless loopback is all there is
    outs = {}
    for backend in ("serial", "ray"):
        cfg = _config(write_config, tmp_path, trials=4, backend=backend, name=f"{backend}.toml")
        text = cfg.read_text().replace(str(tmp_path / "bot.sqlite"), str(tmp_path / f"{backend}.sqlite"))
        cfg.write_text(text)
        proc = _run(["hyperopt", "--config", str(cfg), "--json", "--no-progress"], timeout=300,
                    netns=backend == "ray")
        assert proc.returncode == 0, proc.stderr
        outs[backend] = json.loads(proc.stdout)["BTC/USDT 1h"]
        outs[backend].pop("seconds")
        outs[backend]["ledger"] = [(r["params"], r["returns"], r["metrics"])
                                   for r in read_trials(tmp_path / f"{backend}.sqlite")]
    assert outs["serial"] == outs["ray"]


def test_an_invalid_sample_fails_its_trial_not_the_search(write_config, tmp_path: Path, data_dir: Path) -> None:
    """fast >= slow is no MA crossover: that trial is failed and never scored; the search goes on."""
    cfg = _config(write_config, tmp_path, trials=3)
    cfg.write_text(cfg.read_text().replace('{ low = 5, high = 25, step = 5 }', '{ low = 30, high = 60, step = 30 }')
                   .replace('{ low = 40, high = 120, step = 20 }', '{ low = 40, high = 50, step = 10 }'))
    settings = load_settings(cfg)
    history = load_history(data_dir, "BTC/USDT", "1h", "2019-06-01", "2021-06-01")
    with Compute(ComputeConfig(cpus=1), progress=False) as compute:
        result = run_hyperopt(settings, history, compute, progress=False)
    scored = read_trials(tmp_path / "bot.sqlite", span="inner")
    assert scored and all(r["params"]["strategies.ma.params.fast"] < r["params"]["strategies.ma.params.slow"]
                          for r in scored)
    assert result.best_params["strategies.ma.params.fast"] == 30


def test_trials_share_one_copy_of_the_bars_and_a_bar_counts_them(
    write_config, tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """Every trial reads the inner bars through one shared handle (put into the store once); one
    progress bar counts the search's trials as they finish."""
    from tests.evaluation.test_compute import Handle, HandleCompute

    settings = load_settings(_config(write_config, tmp_path, trials=3))
    history = load_history(data_dir, "BTC/USDT", "1h", "2019-06-01", "2021-06-01")
    compute = HandleCompute(progress=True)
    run_hyperopt(settings, history, compute, progress=True)
    trials = [t for t in compute.tasks if t[-1] is not None]  # (settings, bars, ..., score_to)
    assert len(trials) == 3 and len({t[1] for t in trials}) == 1 and isinstance(trials[0][1], Handle)
    err = capsys.readouterr().err
    assert "trials BTC/USDT 1h" in err and "3/3" in err, err[-2000:]


CPCV_SEARCH = """
[backtest]
symbols = ["BTC/USDT"]
timeframe = "1h"
start = 2019-01-01
end = 2019-06-01

[walkforward]
splitter = "{splitter}"
cpcv_groups = 4
cpcv_test_groups = 2

[hyperopt]
trials = 2
seed = 3
strategy = "gbm"
objective = "path_sharpe"
outer_start = 2019-05-01
storage = "{storage}"

[hyperopt.space]
"walkforward.long_above" = {{ low = 0.5, high = 0.6 }}

[[models]]
name = "gbm"
kind = "gbm"
preset = "gbm"
window = 24
gbm_max_iter = 5
"""


@pytest.mark.slow
def test_a_cpcv_search_maximises_the_sharpe_over_the_inner_paths(write_config, tmp_path: Path) -> None:
    """Each trial walks its inner bars with CPCV; the objective is its mean Sharpe over the paths."""
    cfg = write_config(CPCV_SEARCH.format(splitter="cpcv", storage=tmp_path / "s.sqlite"))
    proc = _run(["hyperopt", "--config", str(cfg), "--json", "--no-progress"])
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)["BTC/USDT 1h"]
    inner = read_trials(tmp_path / "bot.sqlite", span="inner")
    assert len(inner) == 2
    for r in inner:
        m = r["metrics"]
        assert len(m["path_sharpes"]) == 3 and m["path_sharpe"] == pytest.approx(np.mean(m["path_sharpes"]))
        assert r["data_to"] < out["outer_start_ts"]  # the inner paths never reach the outer span
    best = max(inner, key=lambda r: r["metrics"]["path_sharpe"])
    assert out["best_params"] == best["params"]
    # the objective without the splitter it needs: one line, exit 2
    bad = write_config(CPCV_SEARCH.format(splitter="walk_forward", storage=tmp_path / "b.sqlite"), name="b.toml")
    proc = _run(["hyperopt", "--config", str(bad), "--json", "--no-progress"])
    assert proc.returncode == 2 and 'needs [walkforward] splitter = "cpcv"' in proc.stderr, proc.stderr
