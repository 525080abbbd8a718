"""The dashboard's live stream: Engine facts become server-sent events for every client."""

from __future__ import annotations

import json

from bot.api.stream import StreamHub
from bot.core.events import TradingStateChanged


def test_a_trading_state_change_reaches_every_client_as_one_event() -> None:
    hub = StreamHub(queue_size=4)
    first, second = hub.connect(), hub.connect()
    hub.listener(TradingStateChanged(1_700_000_000_000, "active", "halted", "max drawdown 15% breached"))
    for client in (first, second):
        message = client.get_nowait()
        head, data = message.strip().split("\n")
        assert head == "event: trading_state"
        assert json.loads(data.removeprefix("data: ")) == {
            "ts": 1_700_000_000_000, "old": "active", "new": "halted", "reason": "max drawdown 15% breached"}
        assert client.empty()
