from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.cli.ops import add_parsers, gather_status, top_attributions
from bot.config.load import load_settings
from bot.core.events import Direction, EquitySnapshot, PositionChanged, Signal
from bot.store.store import Store
from tests.paths import REPO


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="neuralbot")
    add_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


async def seed_store(path: Path) -> None:
    store = await Store.open(path, portfolio="default")
    for i in range(7):
        store.record(Signal("ensemble", "BTC/USDT", "1h", 1_700_000_000_000 + i * 3_600_000,
                            Direction.LONG if i % 2 else Direction.FLAT, 60.0 + i, probability=0.5 + i / 100,
                            attributions={"rsi_14": 0.1 * i, "ret_1": -0.3, "atr_14": 0.05, "hour": 0.01},
                            reason=f"edge 0.{i}000% - cost 0.3200% = ...: stay flat"))
    store.record(PositionChanged("BTC/USDT", 0.25, 30_000.0, 28_200.0, 33_600.0, 12.5, 1_700_000_000_000))
    store.record(PositionChanged("ETH/USDT", 0.0, 0.0, None, None, -3.0, 1_700_000_000_000))
    store.record(EquitySnapshot(1_700_000_000_000, 2_000.0, 9_900.0, 7_900.0, 450.0))
    store.record(EquitySnapshot(1_700_003_600_000, 2_000.0, 10_100.0, 8_100.0, 450.0))
    await store.close()


def test_top_attributions_by_magnitude() -> None:
    raw = json.dumps({"a": 0.1, "b": -0.5, "c": 0.3, "d": "x"})
    assert top_attributions(raw, 2) == [("b", -0.5), ("c", 0.3)]
    assert top_attributions(None, 3) == [] and top_attributions("not json", 3) == []


async def test_status_reports_store_contents(write_config: Callable[..., Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config()
    await seed_store(tmp_path / "bot.sqlite")
    # a state file left by a daemon that is gone: reported as stopped
    (tmp_path / "bot.sqlite.daemon.json").write_text(json.dumps(
        {"pid": 2**22 + 12345, "status": "ok", "trading_state": "active", "run_id": "r1"}))
    st = gather_status(load_settings(config), 3, 2)
    assert st["equity"] == 10_100.0 and st["heat"] == 450.0
    assert st["heat_pct"] == pytest.approx(100 * 450 / 10_100)
    assert [p["symbol"] for p in st["positions"]] == ["BTC/USDT"]  # flat positions are not listed
    assert len(st["signals"]) == 3 and st["signals"][0]["ts"] == 1_700_000_000_000 + 6 * 3_600_000
    assert st["signals"][0]["top_attributions"] == [("rsi_14", pytest.approx(0.6)), ("ret_1", -0.3)]
    assert st["signals"][0]["explanation"] == "rsi_14 +60%, ret_1 -30%"
    assert st["daemon"]["state"] == "stopped" and st["daemon"]["running"] is False


def test_status_cli_text_and_json(write_config: Callable[..., Path], tmp_path: Path) -> None:
    import asyncio

    config = write_config()
    asyncio.run(seed_store(tmp_path / "bot.sqlite"))
    (tmp_path / "bot.sqlite.daemon.json").write_text(json.dumps(
        {"pid": os.getpid(), "status": "ok", "trading_state": "reducing", "run_id": "abc"}))
    code = ("import sys, argparse\n"
            "from bot.cli.ops import add_parsers\n"
            "p = argparse.ArgumentParser(); add_parsers(p.add_subparsers())\n"
            "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    text = subprocess.run([sys.executable, "-c", code, "status", "--config", str(config)],
                          capture_output=True, text=True, env=env, check=True).stdout
    assert "state     reducing" in text  # this test process plays the running daemon
    assert "BTC/USDT     0.25000000 @ 30,000.00  stop 28,200.00  tp 33,600.00" in text
    assert "heat      450.00 (4.46% of equity)" in text.replace("  (", " (")
    assert "[rsi_14 +60%, ret_1 -30%, atr_14 +5%]" in text  # strategies.models.explain.format_attributions
    assert "why: edge 0.6000% - cost 0.3200% = ...: stay flat" in text  # why it did or did not trade
    out = subprocess.run([sys.executable, "-c", code, "status", "--config", str(config), "--json"],
                         capture_output=True, text=True, env=env, check=True).stdout
    assert json.loads(out)["daemon"]["state"] == "reducing"


def test_status_without_store_fails_cleanly(write_config: Callable[..., Path]) -> None:
    args = parse(["status", "--config", str(write_config())])
    assert args.func(args) == 1


def test_status_bad_config_is_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[risk]\nmax_position_pct = 500\n")
    args = parse(["status", "--config", str(bad)])
    assert args.func(args) == 2
