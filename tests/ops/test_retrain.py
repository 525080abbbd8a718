"""Retraining: triggers, and candidates judged in a real spawned process before any swap."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.core.events import Candle, Direction, Signal
from bot.ops.health import OpsMetrics
from bot.config.ops import RetrainConfig
from bot.ops.accuracy import AccuracyTracker
from bot.ops.retrain import Retrainer
from bot.ops.retrain_job import fit_candidate
from strategies.models.calibration import TemperatureScaler
from strategies.features.compute import get_spec
from strategies.features.history import load_history
from strategies.models.spec import ModelSpec
from strategies.predictor import ModelHolder
from strategies.models.registry import RegistryError, load_model, model_dir, read_meta, save_model
from strategies.training.pipeline import Dataset, train_model

SPEC = ModelSpec(name="lstm", kind="lstm", window=12, hidden=(8,), dense=(8,), epochs=1, batch_size=256)
TRAIN_BARS, EVAL_BARS = 2000, 300
END = "2021-06-01"


def overconfident(spec: ModelSpec, ds: Dataset, val_fraction: float) -> Any:
    """A trainer producing a deliberately worse model: same fit, absurdly sharp probabilities."""
    model = fit_candidate(spec, ds, val_fraction)
    model.calibrator = TemperatureScaler(0.02)
    return model


def holder(models_dir: Path | None = None) -> ModelHolder:
    """The models a strategy trades BTC/USDT 1h with (what the retrainer retrains): the
    registry's ``lstm`` under ``models_dir``, else none."""
    models = {} if models_dir is None else {"lstm": load_model(model_dir(models_dir, "BTC/USDT", "1h", "lstm"))}
    return ModelHolder("host", "BTC/USDT", "1h", models)


def _sha(d: Path) -> str:
    """Identity of a saved model: its weights and its calibration (the retrain may change either)."""
    meta = read_meta(d)
    digest = hashlib.sha256((d / meta["weights_file"]).read_bytes())
    digest.update(json.dumps(meta["calibration"], sort_keys=True).encode())
    return digest.hexdigest()


def make_incumbent(data_dir: Path, models_dir: Path, sharpen: bool) -> Path:
    hist = load_history(data_dir, "BTC/USDT", "1h", "2020-11-01", END)
    n = len(hist)
    keep = slice(n - TRAIN_BARS - EVAL_BARS, n - EVAL_BARS)  # never sees the evaluation bars
    from strategies.features.history import History

    hist = History(hist.symbol, hist.timeframe, {k: v[keep] for k, v in hist.arrays.items()}, 0)
    fspec = get_spec("default")
    result = train_model(SPEC, Dataset.build(hist, fspec))
    if sharpen:
        result.model.calibrator = TemperatureScaler(0.02)
    return save_model(result.model, model_dir(models_dir, "BTC/USDT", "1h", "lstm"), fspec)


def retrainer(data_dir: Path, models_dir: Path, tmp: Path, trainer: str) -> tuple[Retrainer, ModelHolder, OpsMetrics]:
    cfg = RetrainConfig(enabled=True, models_dir=models_dir, train_bars=TRAIN_BARS, eval_bars=EVAL_BARS,
                        min_improvement=0.001)
    settings = SimpleNamespace(data=SimpleNamespace(dir=data_dir), exchange=SimpleNamespace(name="binance"),
                               store=SimpleNamespace(path=tmp / "none.sqlite"),
                               walkforward=SimpleNamespace(val_fraction=0.15))
    host, metrics = holder(models_dir), OpsMetrics()
    return Retrainer(cfg, settings, metrics=metrics, holders=[host], trainer=trainer), host, metrics


def _jobs(r: Retrainer) -> list[Any]:
    from dataclasses import replace
    from datetime import date

    from bot.config.settings import date_to_ms

    return [replace(job, end_ms=date_to_ms(date.fromisoformat(END))) for job in r.jobs()]


async def test_worse_candidate_is_not_swapped_in(data_dir: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    inc = make_incumbent(data_dir, models, sharpen=False)
    before = _sha(inc)
    r, host, metrics = retrainer(data_dir, models, tmp_path, "tests.ops.test_retrain:overconfident")
    running = host.models["lstm"]
    verdicts = await r.run_once("test", _jobs(r))
    assert len(verdicts) == 1 and not verdicts[0].error, verdicts
    v = verdicts[0]
    assert v.metric == "brier" and v.candidate > v.incumbent and v.better is False
    assert _sha(inc) == before and host.models["lstm"] is running and host.version == 0
    assert not (models / "BTC_USDT_1h" / ".archive").exists()
    assert 'neuralbot_retrains_total{outcome="kept"} 1.0' in metrics.render().decode()


async def test_better_candidate_is_swapped_in_and_old_archived(data_dir: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    inc = make_incumbent(data_dir, models, sharpen=True)  # the running model is the bad one
    before = _sha(inc)
    r, host, metrics = retrainer(data_dir, models, tmp_path, "bot.ops.retrain_job:fit_candidate")
    verdicts = await r.run_once("test", _jobs(r))
    assert len(verdicts) == 1 and verdicts[0].better, verdicts
    assert _sha(inc) != before  # the registry now holds the candidate
    archived = list((models / "BTC_USDT_1h" / ".archive").iterdir())
    assert len(archived) == 1 and _sha(archived[0]) == before
    assert host.version == 1  # swapped once, in the holder the strategy predicts from
    assert host.models["lstm"].calibrator.to_dict()["temperature"] != 0.02
    assert 'neuralbot_retrains_total{outcome="swapped"} 1.0' in metrics.render().decode()
    assert not (models / "BTC_USDT_1h" / ".staging").exists() or not any(
        (models / "BTC_USDT_1h" / ".staging").iterdir())


def _candle(ts: int, close: float) -> Candle:
    return Candle("binance", "BTC/USDT", "1h", ts, close, close + 1, close - 1, close, 1.0)


def _signal(ts: int, p: float) -> Signal:
    return Signal("ens", "BTC/USDT", "1h", ts, Direction.LONG if p > 0.5 else Direction.FLAT, 70, probability=p)


def test_accuracy_tracker_detects_relative_drop() -> None:
    t = AccuracyTracker(window=20, drop_pct=10.0)
    h = 3_600_000
    price = 100.0
    for i in range(60):
        ts = i * h
        t.candle(_candle(ts, price))
        up_next = i % 2 == 0
        right = i < 40 or i % 4 == 0  # the first 40 calls are right, then only every 4th
        t.signal(_signal(ts + h, 0.7 if up_next == right else 0.3))
        price += 1.0 if up_next else -1.0
    assert t.baseline == 1.0
    assert t.dropped() and t.accuracy() < 0.9
    t.reset()
    assert not t.dropped()


class FakeClock:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def now_ms(self) -> int:
        return self.ms


def test_triggers_schedule_expiry_and_min_interval(tmp_path: Path) -> None:
    d = model_dir(tmp_path, "BTC/USDT", "1h", "m1")
    d.mkdir(parents=True)
    (d / "meta.json").write_text('{"created_at": "2024-01-01T00:00:00Z", "name": "m1"}')
    created = 1704067200000
    cfg = RetrainConfig(enabled=True, models_dir=tmp_path, max_model_age_days=10, min_interval_hours=6)
    settings = SimpleNamespace()
    clock = FakeClock(created + 3_600_000)
    r = Retrainer(cfg, settings, clock=clock, cadence="1d", holders=[holder()])
    assert r.due() is None
    clock.ms = created + 25 * 3_600_000
    assert r.due() == "schedule: every 1d"
    r.reconfigure(cfg, None)
    assert r.due() is None  # triggers only
    r.reconfigure(cfg, "1d")
    clock.ms = created + 11 * 86_400_000
    assert r.due() == "expired: m1"
    assert r.model_report()["BTC/USDT@1h"]["m1"]["expired"] is True
    series = r.series[("BTC/USDT", "1h")]
    series.last_attempt_ms = clock.ms - 3_600_000
    assert r.due() is None  # attempted an hour ago: wait min_interval_hours
    r.running = True
    series.last_attempt_ms = None
    assert r.due() is None


@pytest.mark.parametrize("drop", [5.0, 50.0])
def test_tracker_threshold_is_configurable(drop: float) -> None:
    t = AccuracyTracker(window=10, drop_pct=drop)
    for hit in [True] * 10 + [False] * 1:
        t.add(hit)
    assert t.dropped() is (drop < 10.0)


def test_a_reload_whose_registry_cannot_be_read_changes_nothing(tmp_path: Path) -> None:
    """SIGHUP validates before it applies: an unreadable meta.json rejects the new [retrain]
    and leaves the running one (and what the registry said) as it was."""
    d = model_dir(tmp_path, "BTC/USDT", "1h", "m1")
    d.mkdir(parents=True)
    (d / "meta.json").write_text('{"created_at": "2024-01-01T00:00:00Z", "name": "m1"}')
    cfg = RetrainConfig(enabled=True, models_dir=tmp_path, max_model_age_days=10, accuracy_window=50)
    r = Retrainer(cfg, SimpleNamespace(), clock=FakeClock(1704067200000), cadence="1d", holders=[holder()])
    (d / "meta.json").write_text("{ not json")
    new = cfg.model_copy(update={"accuracy_window": 80, "max_model_age_days": 1})
    with pytest.raises(RegistryError):
        r.reconfigure(new, None)
    series = r.series[("BTC/USDT", "1h")]
    assert r.config is cfg and r.cadence == "1d" and series.tracker.window == 50
    assert series.metas["m1"]["name"] == "m1"
