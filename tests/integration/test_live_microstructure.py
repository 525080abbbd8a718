"""Books and trades reach the features: a paper daemon on the loopback exchange (real ccxt.pro
feed, recorded Binance depth and trade traffic) runs a ``full``-spec neural ensemble of tiny
real torch models; its live feature rows carry book imbalance, spread and volume delta."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bot.config.load import load_settings
from bot.app.daemon import Daemon
from bot.app.demo_live import LoopbackExchange
from bot.core.events import timeframe_ms
from bot.sim.settings import SimSettings
from strategies.features.compute import FULL_SPEC, get_spec
from strategies.models.spec import ModelSpec
from strategies.models.zoo import build_model
from strategies.models.registry import model_dir, save_model

START_MS = 1_609_459_200_000  # 2021-01-01
WAIT_S = 90.0  # ceiling on a loaded 2-core machine, never a pass/fail timing

CONFIG = """
mode = "paper"

[exchange]
http_url = "{http}"
ws_url = "{ws}"

[feed]
source = "exchange"
order_book = true
trades = true

[health]
enabled = false

[daemon]
check_clock_skew = false
flush_interval_s = 0.2

[store]
path = "{store}"

[data]
dir = "{data}"

[[strategies]]
name = "full"
kind = "neural"
symbols = ["BTC/USDT"]
timeframe = "1h"
params = {{ models = ["a"], models_dir = "{models}", features = "full", vote_k = 1, explain = "none", act_strength = 100.0 }}
"""


@pytest.mark.slow
async def test_a_live_full_spec_strategy_sees_books_and_trades(tmp_path: Path, data_dir: Path) -> None:
    models = tmp_path / "models"
    torch.manual_seed(0)
    spec = ModelSpec(name="a", kind="lstm", window=24, hidden=(8,), dense=(8,), features="full")
    save_model(build_model(spec, FULL_SPEC.n_features), model_dir(models, "BTC/USDT", "1h", "a"), FULL_SPEC)
    sim = SimSettings(data_dir=data_dir, symbols=("BTC/USDT",), timeframes=("1h",),
                      speed=timeframe_ms("1h") / 400.0, start_ms=START_MS, book_replay=True,
                      matching_book="recorded", kline_updates=0)  # depth snapshot and diffs agree
    with LoopbackExchange(sim) as ex:
        config = tmp_path / "config.toml"
        config.write_text(CONFIG.format(http=ex.http_url, ws=ex.ws_url, store=tmp_path / "bot.sqlite",
                                        data=data_dir, models=models))
        settings = load_settings(config)
        stop = asyncio.Event()
        daemon = Daemon(settings, "micro", stop)
        run = asyncio.create_task(daemon.run())
        deadline = time.monotonic() + WAIT_S
        while (daemon.engine is None or daemon.engine.stats.candles < 20) and time.monotonic() < deadline:
            assert not run.done(), run.exception()
            await asyncio.sleep(0.1)
        assert daemon.engine is not None and daemon.engine.stats.candles >= 20, "no live candles"
        buffer = daemon.engine.strategies[0].book("BTC/USDT").live.buffer  # type: ignore[attr-defined]
        live = np.array(buffer.window(daemon.engine.stats.candles - 1))
        first_live = daemon.engine.stats.first_ts
        stop.set()
        await asyncio.wait_for(run, WAIT_S)
    # an empty store: the strategy was warmed over REST and signals from the first live bar
    with sqlite3.connect(tmp_path / "bot.sqlite") as db:
        first_signal = db.execute("SELECT MIN(ts) FROM signals WHERE strategy = 'full'").fetchone()[0]
    assert first_signal == first_live + timeframe_ms("1h"), (first_signal, first_live)
    cols = list(FULL_SPEC.columns)
    for name in ("book_imbalance", "spread_bps", "volume_delta"):
        values = live[:, cols.index(name)]
        assert np.count_nonzero(values) >= 3, f"{name} is 0 on live bars: {values}"
    spread = live[:, cols.index("spread_bps")]
    assert ((spread[spread != 0] > 0) & (spread[spread != 0] < 100)).all(), spread
    assert (np.abs(live[:, cols.index("book_imbalance")]) <= 1).all()


def test_the_feed_streams_what_a_strategy_reads(tmp_path: Path, data_dir: Path) -> None:
    from bot.kernel.settings import live_feed_settings

    models = tmp_path / "models"
    spec = ModelSpec(name="a", kind="lstm", window=24, hidden=(8,), dense=(8,), features="full")
    save_model(build_model(spec, FULL_SPEC.n_features), model_dir(models, "BTC/USDT", "1h", "a"), FULL_SPEC)
    body = CONFIG.format(http="http://127.0.0.1:1", ws="ws://127.0.0.1:1", store=tmp_path / "s.sqlite",
                         data=data_dir, models=models).replace("order_book = true\ntrades = true\n", "")
    config = tmp_path / "config.toml"
    config.write_text(body)
    lfs = live_feed_settings(load_settings(config))
    assert lfs.order_book and lfs.trades  # off in [feed], on because the strategy reads them
    config.write_text(body.replace('features = "full", ', "").replace('models = ["a"], ', 'models = ["b"], '))
    save_model(build_model(ModelSpec(name="b", kind="lstm", window=24, hidden=(8,), dense=(8,)), 13),
               model_dir(models, "BTC/USDT", "1h", "b"), get_spec("default"))
    lfs = live_feed_settings(load_settings(config))
    assert not lfs.order_book and not lfs.trades
