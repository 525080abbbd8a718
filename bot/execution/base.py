"""The execution port: where approved intents become orders and fills.

The Engine talks only to this Protocol. The simulated executor (backtests and
candle-only paper trading) fills at the next bar's open; book-walking paper and
exchange (sandbox/live via ccxt) executors implement the same two methods.

Every order an executor accepts ends with an ``OrderClosed`` (filled, canceled,
rejected or expired, with what it filled): what it will not fill is closed, never
left open, so the Engine releases what it reserved for the order and stores its end.
"""

from __future__ import annotations

from typing import Any, Protocol

from bot.events import Fact, MarketEvent, OrderIntent


class ExecutionPort(Protocol):
    async def submit(self, intent: OrderIntent, now_ms: int) -> list[Fact]:
        """Place an approved intent; returns ``OrderSubmitted`` and any immediate fills."""
        ...

    async def on_market(self, event: MarketEvent) -> list[Fact]:
        """Let resting orders react to new market data; returns the resulting fills."""
        ...


class ProtectionPort(Protocol):
    """Exchange-side protective stop orders that follow a position (optional)."""

    async def protect(self, symbol: str, amount: float, stop_price: float, origin: int) -> list[Any]:
        """Make the exchange hold one stop for ``amount`` at ``stop_price`` (replace if it differs)."""
        ...

    async def unprotect(self, symbol: str) -> list[Any]:
        """Cancel the symbol's stop; returns its facts (fills, if it had triggered)."""
        ...
