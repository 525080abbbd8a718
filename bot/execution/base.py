"""The execution port: where approved intents become orders and fills.

The Engine talks only to this Protocol. The simulated executor (backtests and
candle-only paper trading) fills at the next bar's open; book-walking paper and
exchange (sandbox/live via ccxt) executors implement the same two methods.
"""

from __future__ import annotations

from typing import Protocol

from bot.events import Fact, MarketEvent, OrderIntent


class ExecutionPort(Protocol):
    async def submit(self, intent: OrderIntent, now_ms: int) -> list[Fact]:
        """Place an approved intent; returns ``OrderSubmitted`` and any immediate fills."""
        ...

    async def on_market(self, event: MarketEvent) -> list[Fact]:
        """Let resting orders react to new market data; returns the resulting fills."""
        ...
