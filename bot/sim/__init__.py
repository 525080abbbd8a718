"""A loopback Binance spot exchange replaying real recorded data (REST + websocket)."""

from __future__ import annotations

from bot.sim.ccxt_config import ccxt_urls, configure_ccxt, make_ccxt_binance
from bot.sim.server import SimExchange, replace_faults
from bot.sim.settings import FaultSettings, SimSettings

__all__ = [
    "FaultSettings",
    "SimExchange",
    "SimSettings",
    "ccxt_urls",
    "configure_ccxt",
    "make_ccxt_binance",
    "replace_faults",
]
