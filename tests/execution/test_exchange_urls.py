"""Which network each mode talks to: paper = the exchange's real public market data (no keys),
sandbox = its test network, live = production (opt-in). Built by the real ccxt classes, no I/O."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bot.config.load import load_settings
from bot.kernel.kernel import Kernel


def urls(client: object) -> str:
    return json.dumps(client.urls["api"])  # type: ignore[attr-defined]


@pytest.mark.parametrize(("mode", "extra", "testnet"), [
    ("paper", "", False),
    ("sandbox", "", True),
    ("live", "i_understand_live_trading = true\n", False),
])
def test_each_mode_streams_and_trades_on_its_network(
        write_config: Callable[..., Path], monkeypatch: pytest.MonkeyPatch,
        mode: str, extra: str, testnet: bool) -> None:
    monkeypatch.setenv("NEURALBOT_API_KEY", "k")
    monkeypatch.setenv("NEURALBOT_API_SECRET", "s")
    settings = load_settings(write_config(f'mode = "{mode}"\n{extra}\n[feed]\nsource = "exchange"\n'))
    kernel = Kernel(settings)
    feed = kernel.exchange_feed([("BTC/USDT", "1h")], {}, clock=None)  # type: ignore[arg-type]
    ws = urls(feed.exchange)
    try:
        assert ("testnet" in ws) is testnet, ws
        assert ("stream.binance.com" in ws) is not testnet, ws
        assert not feed.exchange.apiKey  # market data never carries credentials
        if mode != "paper":  # paper places no exchange orders: no REST trading client at all
            rest = kernel.client()
            try:
                assert ("testnet" in urls(rest)) is testnet and ("api.binance.com" in urls(rest)) is not testnet
            finally:
                asyncio.run(rest.close())
    finally:
        asyncio.run(feed.exchange.close())
