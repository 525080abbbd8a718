"""CPCV as the walk-forward splitter: the configured schedule never leaks, its paths each cover every
out-of-sample bar once, and ``walkforward`` reports the Sharpe ratio over the paths (JSON and HTML)."""

from __future__ import annotations

import json
from math import comb
from pathlib import Path

import numpy as np
import pytest

from bot.evaluation import candidates
from bot.evaluation.schedule import WalkForwardConfig
from bot.evaluation.walkforward import embargo_bars, plan_folds, walk_forward
from strategies.features.compute import DEFAULT_SPEC, compute_features
from strategies.features.history import History, load_history
from strategies.training.labels import model_labels
from strategies.models.spec import ModelSpec
from strategies.training.synthetic import random_walk_history
from strategies.features.windows import valid_ends
from tests.evaluation.test_compute import TINY
from tests.cli.test_evaluate_cli import parse

CPCV = {"splitter": "cpcv", "cpcv_groups": 5, "cpcv_test_groups": 2, "cpcv_embargo_days": 1.0}


@pytest.mark.parametrize("embargo_days", [0.0, 1.0, 3.0])
def test_configured_cpcv_splits_never_leak_by_the_labels_real_spans(embargo_days: float) -> None:
    """The folds walk_forward fits on, asserted on their index sets: no fitted row's label span
    [t, end[t]] overlaps a test group's label spans stretched by the embargo; nothing unknown or
    tested is fitted on; a training label resolves before the validation split."""
    history = random_walk_history(3000, seed=5)
    barrier = ModelSpec(name="tb", kind="gbm", target="triple_barrier", horizon=24, window=24)
    direction = ModelSpec(name="d", kind="gbm", horizon=4, window=48)
    labels = {s.name: model_labels(history.arrays, s, "1h") for s in (barrier, direction)}
    ts = np.asarray(history.arrays["ts"], dtype=np.int64)
    ends = valid_ends(compute_features(history.arrays, DEFAULT_SPEC), None, 48)
    cfg = WalkForwardConfig(cache_dir=None, **{**CPCV, "cpcv_embargo_days": embargo_days})
    sched = plan_folds(ts, ends, labels, cfg, 24, 48, "1h")
    assert len(sched.folds) == comb(5, 2) and len(sched.paths) == comb(4, 1)
    embargo = embargo_bars(cfg, "1h")
    assert embargo == round(24 * embargo_days)
    tb, d = labels["tb"].end, labels["d"].end
    assert len(np.unique(tb[tb >= 0] - np.flatnonzero(tb >= 0))) > 5  # barrier spans really vary
    for fold in sched.folds:
        fitted = np.concatenate([fold.train, fold.val])
        assert not np.intersect1d(fitted, fold.test).size
        assert np.all(tb[fitted] >= 0) and np.all(d[fitted] >= 0)
        fit_end = np.maximum(tb[fitted], d[fitted])
        for g in fold.groups:
            lo, hi = sched.group_rows[g]
            rows = fold.test[(fold.test >= lo) & (fold.test < hi)]
            assert len(rows) and set(rows.tolist()) == set(ends[(ends >= lo) & (ends < hi)].tolist())
            test_end = np.maximum(np.maximum(tb[rows], d[rows]), rows)
            # pairwise: fitted span [f, fit_end] against test span [t, test_end + embargo]
            overlap = (fitted[:, None] <= test_end[None, :] + embargo) & (fit_end[:, None] >= rows[None, :])
            assert not overlap.any(), f"split {fold.index} group {g}"
        assert np.maximum(tb[fold.train], d[fold.train]).max() < fold.val.min()
        # purging drops what overlaps, not the rest: most of the other groups is still fitted on
        assert len(fitted) > 0.8 * (len(ends) - len(fold.test)) - 2 * len(fold.groups) * (48 + embargo)


def test_every_path_covers_every_out_of_sample_bar_once(data_dir: Path) -> None:
    history = load_history(data_dir, "BTC/USDT", "1h", "2019-01-01", "2019-04-01")
    res = walk_forward(history, WalkForwardConfig(cache_dir=None, **CPCV), TINY, progress=False)
    ts = np.asarray(history.arrays["ts"])
    ends = valid_ends(compute_features(history.arrays, DEFAULT_SPEC), None, 24)
    assert len(res.paths) == comb(4, 1) and res.forecasts is res.paths[0]
    # each row is tested by C(N-1, k-1) splits: one per path
    assert sum(int(f["n_test"]) for f in res.folds) == len(ends) * len(res.paths)
    for path in res.paths:
        assert set(path) == {"gbm", "lstm", "ensemble"}
        for f in path.values():
            assert np.array_equal(f.ts, ts[ends])  # every window-end bar exactly once, in time order
            assert np.all(np.isfinite(f.p))
        for k in np.unique(path["gbm"].fold):  # each stretch is forecast by a split that tests it
            tested = path["gbm"].ts[path["gbm"].fold == k]
            groups = res.folds[int(k)]["test_groups"]
            assert len(groups) == 2 and res.folds[int(k)]["test_from"] <= tested[0]
    # another path is another model's forecast of the same bar; a split's forecast is the same on every path
    assert any(not np.array_equal(p["gbm"].p, res.paths[0]["gbm"].p) for p in res.paths[1:])
    by_split: dict[tuple[int, int], float] = {}
    for path in res.paths:
        f = path["gbm"]
        for t, k, p in zip(f.ts.tolist(), f.fold.tolist(), f.p.tolist(), strict=True):
            assert by_split.setdefault((k, t), p) == p


def _one_model_cpcv(write_config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, end: str, groups: int,
                    test_groups: int) -> Path:
    """A config walking one tiny model forward by CPCV on BTC/USDT 1h from 2019-01-01 to ``end``."""
    monkeypatch.setattr(candidates, "model_specs", lambda settings: TINY[:1])
    return write_config(f"[backtest]\nstart = 2019-01-01\nend = {end}\n"
                        f'[walkforward]\nsplitter = "cpcv"\ncpcv_groups = {groups}\ncpcv_test_groups = {test_groups}\n'
                        f'cache_dir = "{tmp_path / "wf-cache"}"\n')


def test_walkforward_reports_the_sharpe_over_paths(
    write_config, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _one_model_cpcv(write_config, tmp_path, monkeypatch, "2019-04-01", 4, 2)
    report = tmp_path / "report"
    for _ in range(2):  # the second run reads the paths back from the cache
        args = parse(["walkforward", "--config", str(config), "--json", "--no-progress", "--report", str(report)])
        assert args.func(args) == 0
        out = json.loads(capsys.readouterr().out)["BTC/USDT 1h"]
        c = out["gbm"]["cpcv"]
        assert c["paths"] == comb(3, 1) == len(c["sharpe"])
        assert c["sharpe"][0] == out["gbm"]["sharpe"]  # path 0 is the record scored as usual
        assert len(set(c["sharpe"])) > 1 and min(c["sharpe"]) <= c["mean"] <= max(c["sharpe"])
        assert "cpcv" not in out["ma"] and "cpcv" not in out["buy_and_hold"]  # no forecasts: one path
        if _ == 0:
            first = c
    assert c == first
    # every split's accuracy in the fold table, though most splits' bars are not on path 0
    args = parse(["walkforward", "--config", str(config), "--no-progress"])
    assert args.func(args) == 0
    fold_rows = [line for line in capsys.readouterr().out.splitlines() if "| groups" in line]
    assert len(fold_rows) == comb(4, 2) and not any("n/a" in line for line in fold_rows), fold_rows
    assert (report / "cpcv-BTC_USDT-1h.png").stat().st_size > 1000
    assert "combinatorial purged CV paths" in (report / "index.html").read_text()


def test_walk_forward_splitter_is_unchanged_by_default() -> None:
    """No paths unless asked: walk-forward keeps one out-of-sample history and its folds' order."""
    history = History("X/USDT", "1h", random_walk_history(2000, seed=3).arrays)
    res = walk_forward(history, WalkForwardConfig(min_train_days=30, retrain_every="10d", cache_dir=None),
                       TINY[:1], progress=False)
    f = res.forecasts["gbm"]
    assert res.paths == [] and np.all(np.diff(f.ts) > 0) and np.all(np.diff(f.fold) >= 0)


def test_the_leak_check_catches_a_row_after_a_test_group_its_labels_read() -> None:
    from dataclasses import replace

    from bot.evaluation.walkforward import check_cpcv_fold

    history = random_walk_history(3000, seed=5)
    spec = ModelSpec(name="d", kind="gbm", horizon=6, window=24)
    labels = {"d": model_labels(history.arrays, spec, "1h")}
    ts = np.asarray(history.arrays["ts"], dtype=np.int64)
    ends = valid_ends(compute_features(history.arrays, DEFAULT_SPEC), None, 24)
    cfg = WalkForwardConfig(cache_dir=None, **{**CPCV, "cpcv_embargo_days": 0.0})
    sched = plan_folds(ts, ends, labels, cfg, 6, 24, "1h")
    fold = next(f for f in sched.folds if f.groups == (0, 2))
    after = sched.group_rows[0][1] + 2  # two bars after group 0: a 6-bar test label reads it
    assert after not in fold.train
    leaky = replace(fold, train=np.sort(np.r_[fold.train, after]))
    with pytest.raises(AssertionError, match="overlaps test group 0"):
        check_cpcv_fold(leaky, labels["d"].end, sched.group_rows, 0)


def test_too_many_groups_for_the_history_is_one_line_and_exit_2(
    write_config, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = _one_model_cpcv(write_config, tmp_path, monkeypatch, "2019-01-20", 16, 15)
    args = parse(["walkforward", "--config", str(config), "--json", "--no-progress"])
    assert args.func(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cpcv split 0 leaves" in err[0] and "fewer cpcv_groups" in err[0], err
