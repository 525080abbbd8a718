"""The in-sample guard: a backtest overlapping the models' training span is refused unless allowed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from bot.kernel.compose import run_backtest
from bot.config.load import load_settings
from bot.kernel.in_sample import InSampleError, trained_spans
from tests.paths import REPO
from tests.cli.test_cli import env_without_overrides
from tests.strategies.test_helpers import MODEL_NAMES, tiny_models_dir


@pytest.fixture
def config(write_config) -> Path:
    models = ", ".join(f'"{m}"' for m in MODEL_NAMES)
    return write_config(
        '[[strategies]]\nname = "edge"\nkind = "neural"\n'
        f'params = {{ models_dir = "{tiny_models_dir()}", models = [{models}], decision = {{ band = 0.0 }} }}\n')


def test_spans_come_from_the_registry(config: Path) -> None:
    spans = trained_spans(load_settings(config))
    assert {s.model for s in spans} == set(MODEL_NAMES)
    assert all(s.first_ts < s.end_ts for s in spans)


def test_overlapping_backtest_is_refused_with_one_line_and_exit_2(config: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bot", "backtest", "--config", str(config), "--from", "2020-07-01",
         "--to", "2020-07-10"], capture_output=True, text=True, cwd=REPO, env=env_without_overrides(),
        timeout=300)
    assert proc.returncode == 2
    assert "in-sample" in proc.stderr and "--allow-in-sample" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_allowed_in_sample_run_is_flagged_and_an_out_of_sample_run_is_not(config: Path) -> None:
    settings = load_settings(config)
    with pytest.raises(InSampleError):
        asyncio.run(run_backtest(settings, start=date(2020, 9, 25), end=date(2020, 10, 5)))
    flagged = asyncio.run(run_backtest(settings, start=date(2020, 9, 25), end=date(2020, 10, 5), allow_in_sample=True))
    assert "not out of sample" in flagged.summary["in_sample"]
    clean = asyncio.run(run_backtest(settings, start=date(2020, 10, 5), end=date(2020, 10, 12)))
    assert "in_sample" not in clean.summary and clean.summary["candles"] == 7 * 24
