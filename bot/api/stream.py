"""Live updates for the dashboard: Engine facts fanned out to server-sent-event clients.

``StreamHub.listener`` subscribes to the Engine; every signal, fill, order, position
change, denial, equity snapshot and trading-state change becomes one JSON message, put into each client's
bounded queue (a client too slow to keep up loses its oldest messages, never blocks
trading). Operator actions are published with ``publish``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from enum import Enum
from typing import Any

from bot.core.events import (
    EquitySnapshot,
    Fact,
    OrderDenied,
    OrderFilled,
    OrderSubmitted,
    PositionChanged,
    Signal,
    TradingStateChanged,
)

KINDS: dict[type, str] = {
    Signal: "signal", OrderSubmitted: "order", OrderFilled: "fill", OrderDenied: "denial",
    PositionChanged: "position", EquitySnapshot: "equity", TradingStateChanged: "trading_state",
}


def plain(item: Any) -> Any:
    """A frozen event as JSON-ready data (enums by value)."""
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return {f.name: plain(getattr(item, f.name)) for f in dataclasses.fields(item)}
    if isinstance(item, Enum):
        return item.value
    if isinstance(item, dict):
        return {str(k): plain(v) for k, v in item.items()}
    if isinstance(item, (list, tuple)):
        return [plain(v) for v in item]
    return item


class StreamHub:
    def __init__(self, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._clients: set[asyncio.Queue[str]] = set()

    def listener(self, item: Fact | Signal) -> None:
        kind = KINDS.get(type(item))
        if kind is not None and self._clients:
            data = plain(item)
            if isinstance(item, Signal):
                data["signal_id"] = item.signal_id
            self.publish(kind, data)

    def publish(self, kind: str, data: dict[str, Any]) -> None:
        if not self._clients:
            return
        message = f"event: {kind}\ndata: {json.dumps(data, default=str)}\n\n"
        for queue in self._clients:
            if queue.full():
                queue.get_nowait()  # drop the oldest for a slow client
            queue.put_nowait(message)

    def connect(self) -> asyncio.Queue[str]:
        queue: asyncio.Queue[str] = asyncio.Queue(self._queue_size)
        self._clients.add(queue)
        return queue

    def disconnect(self, queue: asyncio.Queue[str]) -> None:
        self._clients.discard(queue)
