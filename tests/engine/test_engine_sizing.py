"""Entry sizes from signal to fill, end to end (issue 19, items 5 and 6).

The ensemble owns agreement sizing ("5/5 full size, 4/5 60%", docs/strategies.md); the
Engine must not scale by agreement a second time, and votes a wrapper adds (the
``confirm:<source>`` entries of ``kind = "confirmed"``) must not shrink the entry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.core.clock import SimClock
from bot.engine.engine import Engine, EngineSettings
from bot.evaluation.vote import VoteStrategy
from bot.core.events import Candle
from bot.execution.simulated import SimulatedExecutor
from bot.store.store import Store
from risk.gate import RiskGate, RiskLimits
from risk.portfolio import Portfolio
from risk.stops import StopRules

HOUR = 3_600_000
EQUITY = 10_000.0


async def _entry_notional(tmp_path: Path, probs: dict[str, float]) -> float:
    """Notional of the entry a one-bar vote with ``probs`` produces, as % of equity."""
    strategy = VoteStrategy("vote", "BTC/USDT", "1h", np.array([0]),
                            {m: np.array([p]) for m, p in probs.items()})
    store = await Store.open(tmp_path / "size.sqlite", f"p{len(list(tmp_path.iterdir()))}")
    portfolio = Portfolio(EQUITY)
    engine = Engine(strategies=[strategy], gate=RiskGate(RiskLimits()),
                    executor=SimulatedExecutor(fee_rate=0.0, slippage_bps=0.0, cash=lambda: portfolio.cash),
                    portfolio=portfolio, store=store, clock=SimClock(),
                    settings=EngineSettings(fee_rate=0.0, slippage_margin_bps=0.0, stops=StopRules(5.0, None)))
    try:
        for i in range(2):
            await engine.on_event(Candle("binance", "BTC/USDT", "1h", i * HOUR, 100.0, 100.0, 100.0, 100.0, 1.0))
        await store.flush()
        fills = await store.fetch("fills")
    finally:
        await store.close()
    assert len(fills) == 1, engine.stats.denials_by_check
    return fills[0]["amount"] * fills[0]["price"] / EQUITY * 100.0


@pytest.mark.asyncio
async def test_four_of_five_agreeing_buys_sixty_percent_of_the_full_size(tmp_path: Path) -> None:
    names = ["lstm", "bilstm", "cnn_lstm", "transformer", "gbm"]
    full = await _entry_notional(tmp_path, dict.fromkeys(names, 0.95))
    four = await _entry_notional(tmp_path, dict.fromkeys(names[:4], 0.95) | {"gbm": 0.45})
    assert full == pytest.approx(10.0)  # strength saturated: max_size_pct
    assert four == pytest.approx(0.6 * full)
