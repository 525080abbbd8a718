"""All-in trading through the Engine equals an independent reference loop (issue 19, item 4).

A long-only, all-in SMA(20)/SMA(50) cross on real BTC/USDT hourly candles, 0.1% fee per
side, no slippage, a 99% stop, one position at most and no sizing margin: every buy is
cut to the cash there is at the next open, and the rest of the order must be closed
(released) so the next entry is not denied for a position slot nobody holds.
"""

from __future__ import annotations

import asyncio
from datetime import date

import numpy as np
import pytest

from bot.kernel.compose import run_backtest
from bot.config.settings import date_to_ms
from bot.config.load import load_settings
from bot.marketdata.candle_csv import candle_file, load_candles_csv
from bot.store.store import Store

FEE = 0.001
START, END = date(2018, 1, 1), date(2021, 1, 1)

ALL_IN = """
[exchange]
fee_rate = 0.001

[backtest]
symbols = ["BTC/USDT"]
timeframe = "1h"
start = "2018-01-01"
end = "2021-01-01"
initial_equity = 10000.0
slippage_bps = 0.0

[risk]
max_position_pct = 100.0
max_symbol_exposure_pct = 100.0
max_open_positions = 1
max_heat_pct = 100.0
min_strength = 0.0
stop_loss_pct = 99.0
take_profit_pct = 1000.0
slippage_margin_bps = 0.0
max_orders_per_minute = 1000
daily_loss_limit_pct = 99.0
max_drawdown_pct = 99.0

[[strategies]]
name = "sma"
kind = "ma_crossover"
params = { fast = 20, slow = 50, size_pct = 100.0 }
"""


def reference_fills(o: np.ndarray, c: np.ndarray, ts: np.ndarray, cash: float) -> list[tuple]:
    """The rule written out by hand: decide at each close, fill at the next open, all in."""
    fills: list[tuple] = []
    held = 0.0
    pending: tuple[str, float] | None = None
    for i in range(len(c)):
        if pending is not None:
            side, amount = pending
            price = o[i]
            if side == "buy":
                amount = min(amount, cash / (price * (1 + FEE)))
                cash -= amount * price * (1 + FEE)
                held = amount
            else:
                cash += amount * price * (1 - FEE)
                held = 0.0
            fills.append((int(ts[i]), side, amount, price))
            pending = None
        if i < 49:
            continue
        fast, slow = c[i - 19 : i + 1].mean(), c[i - 49 : i + 1].mean()
        if fast > slow and held == 0.0:
            pending = ("buy", cash / (1 + FEE) / c[i])
        elif fast <= slow and held > 0.0:
            pending = ("sell", held)
    return fills


def test_all_in_cross_trades_like_the_reference_loop(write_config, data_dir) -> None:
    settings = load_settings(write_config(ALL_IN))
    result = asyncio.run(run_backtest(settings))

    async def stored() -> list[dict]:
        async with await Store.open(settings.store.path, result.portfolio) as store:
            return await store.fetch("fills")

    got = [(r["ts"], r["side"], r["amount"], r["price"]) for r in asyncio.run(stored())]
    candles = load_candles_csv(candle_file(data_dir, "binance", "BTC/USDT", "1h"), "binance", "BTC/USDT",
                               "1h", date_to_ms(START), date_to_ms(END))
    o = np.array([k.open for k in candles])
    c = np.array([k.close for k in candles])
    ts = np.array([k.ts for k in candles])
    want = reference_fills(o, c, ts, 10_000.0)
    assert len(want) > 300, "the rule must trade often on this slice"
    assert result.summary["denied"] == 0, result.summary.get("denials_by_check")
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g[0] == w[0] and g[1] == w[1]
        assert g[2] == pytest.approx(w[2], rel=1e-9)
        assert g[3] == pytest.approx(w[3], rel=1e-12)
