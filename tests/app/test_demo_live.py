"""The demo's live part, briefly: the daemon over real BTC/USDT candles from the loopback exchange."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from bot.config.load import load_settings
from bot.cli.demo import live_part
from tests.paths import REPO
from tests.strategies.test_helpers import MODEL_NAMES, tiny_models_dir


def test_live_paper_session_trades_candles_and_prints_a_summary(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    settings = load_settings(REPO / "config.example.toml")  # the demo's own configuration
    settings = settings.model_copy(update={"data": settings.data.model_copy(update={"dir": data_dir})})
    # its neural strategy, decision layer included, on the tiny test models (trained up to the start)
    neural = settings.strategies[0]
    assert neural.kind == "neural" and "decision" in neural.params
    params = {**neural.params, "models_dir": str(tiny_models_dir()), "models": list(MODEL_NAMES)}
    settings = settings.model_copy(update={"strategies": [neural.model_copy(update={"params": params}),
                                                          *settings.strategies[1:]]})
    store = tmp_path / "live.sqlite"

    session = asyncio.run(live_part(settings, candles=80, max_s=60, bar_ms=50, store=store))

    s = session.summary
    assert s["candles"] >= 80 and s["signals"] > 0 and s["stop_reason"] == "signal"
    out = capsys.readouterr().out
    assert "live paper session (daemon, exchange feed)" in out
    assert f"candles {s['candles']}, signals {s['signals']}, orders {s['orders']}, fills {s['fills']}" in out
    with sqlite3.connect(store) as db:
        stored = [r[0] for r in db.execute("SELECT ts FROM candles ORDER BY ts")]
        n_signals = db.execute("SELECT COUNT(*) FROM signals").fetchone()[0]
    # the seeded warm-up bars + every candle the session traded, each once and in order
    assert len(stored) == 200 + s["candles"] and stored == sorted(set(stored))
    assert n_signals == s["signals"]
