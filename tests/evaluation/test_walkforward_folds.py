"""Walk-forward folds never train on a row they later test on."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import numpy as np
import pytest

from bot.evaluation.schedule import DAY_MS, WalkForwardConfig, period_starts, retrain_due
from bot.evaluation.walkforward import check_fold, make_folds
from tests.conftest import BTC_1H

HOUR = 3_600_000
START = 1502942400000  # 2017-08-17 04:00 UTC


def hourly(days: int) -> np.ndarray:
    return START + HOUR * np.arange(days * 24, dtype=np.int64)


@pytest.mark.parametrize("horizon", [1, 3, 24])
def test_no_fold_trains_on_a_row_it_tests(horizon: int) -> None:
    ts = hourly(3 * 365)
    ends = np.arange(47, len(ts))
    cfg = WalkForwardConfig(min_train_days=365, retrain_every="quarter")
    folds = make_folds(ts, ends, cfg, horizon)
    assert len(folds) >= 6
    seen_test: set[int] = set()
    for fold in folds:
        fitted = np.concatenate([fold.train, fold.val])
        # every label a fold fits on (row t reads row t + horizon) is known before its first test bar
        assert set((fitted + horizon).tolist()).isdisjoint(range(int(fold.test.min()), len(ts)))
        assert set(fitted.tolist()).isdisjoint(fold.test.tolist())
        assert fold.train.max() + horizon < fold.val.min()  # validation purged too
        # test rows lie in the fold's period, and no two folds test the same row
        assert np.all((ts[fold.test] >= fold.test_start_ts) & (ts[fold.test] < fold.test_end_ts))
        assert seen_test.isdisjoint(fold.test.tolist())
        seen_test.update(fold.test.tolist())
        check_fold(fold, horizon, 48)
    # retrain including the last test period: fold k+1 fits on fold k's test rows, except
    # the purges (the last ``horizon`` rows before its test, ``horizon`` rows before its val)
    for a, b in itertools.pairwise(folds):
        fitted_b = set(np.concatenate([b.train, b.val]).tolist())
        assert len(set(a.test[:-horizon].tolist()) - fitted_b) <= horizon
        assert a.test.max() < b.test.min()
    # test periods tile the out-of-sample span without gaps
    oos = ends[ts[ends] >= folds[0].test_start_ts]
    assert seen_test == set(oos.tolist())


def test_quarters_are_calendar_aligned_after_the_initial_training_span() -> None:
    ts = hourly(3 * 365)
    starts = period_starts(int(ts[0]), int(ts[-1]), "quarter", 730)
    days = np.asarray(starts, dtype="datetime64[ms]").astype("datetime64[D]").astype(str)
    assert list(days[:3]) == ["2019-10-01", "2020-01-01", "2020-04-01"]
    assert starts[0] >= ts[0] + 730 * DAY_MS


def test_rolling_window_limits_the_training_span() -> None:
    ts = hourly(3 * 365)
    ends = np.arange(47, len(ts))
    cfg = WalkForwardConfig(min_train_days=365, max_train_days=200, retrain_every="60d")
    for fold in make_folds(ts, ends, cfg, 1):
        assert ts[fold.train[0]] >= fold.test_start_ts - 200 * DAY_MS
        check_fold(fold, 1, 48)


def test_check_fold_catches_leakage() -> None:
    ts = hourly(800)
    ends = np.arange(47, len(ts))
    fold = make_folds(ts, ends, WalkForwardConfig(min_train_days=365), 1)[0]
    leaky = type(fold)(fold.index, fold.train, np.append(fold.val, fold.test[:1]), fold.test,
                       fold.test_start_ts, fold.test_end_ts)
    with pytest.raises(AssertionError):
        check_fold(leaky, 1, 48)


def test_folds_on_real_btc_data() -> None:
    from strategies.features.compute import DEFAULT_SPEC, compute_features
    from strategies.features.history import load_history
    from strategies.features.windows import valid_ends

    if not BTC_1H.exists():
        pytest.skip("real data not available")
    h = load_history(BTC_1H.parent.parent.parent, "BTC/USDT", "1h")
    ts = h.arrays["ts"]
    ends = valid_ends(compute_features(h.arrays, DEFAULT_SPEC), None, 48)
    folds = make_folds(ts, ends, WalkForwardConfig(), 1)
    assert len(folds) == 7  # 2019Q4 .. 2021Q2
    for fold in folds:
        check_fold(fold, 1, 48)


@pytest.mark.parametrize(
    ("trained", "now", "cadence", "due"),
    [
        ("2021-02-10", "2021-03-31", "quarter", False),  # same quarter
        ("2021-02-10", "2021-04-01", "quarter", True),  # a new quarter: what walk-forward retrains on
        ("2021-04-01", "2021-06-30", "quarter", False),  # trained at the boundary itself
        ("2021-02-10", "2021-02-16", "7d", False),
        ("2021-02-10", "2021-02-17", "1w", True),
        ("2021-12-31", "2022-01-01", "year", True),
    ],
    ids=["same-quarter", "next-quarter", "at-boundary", "6-of-7-days", "a-week", "new-year"],
)
def test_daemon_retrain_schedule_follows_the_walk_forward_cadence(
    trained: str, now: str, cadence: str, due: bool
) -> None:
    def ms(day: str) -> int:
        return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)

    assert retrain_due(ms(trained), ms(now), cadence) is due
