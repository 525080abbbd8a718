"""The ports the Engine talks through, as ``typing.Protocol`` classes (one module).

* ``Clock``: the injected time. ``advance_to`` moves a simulated clock with the market
  (backtest, paper); a wall clock ignores it.
* ``ExecutionPort``: where approved intents become orders and fills. Every executor
  (simulated, paper book, exchange) places intents, lets resting orders react to market
  data, cancels what rests (``cancel_all``, keeping protective orders or not) and declares
  its exchange-side protection (``protection``: a ``ProtectionPort``, or ``None``).
* ``ProtectionPort``: exchange-side protective stops that follow a position.
* ``FactSink``: where the Engine writes its facts and decisions and keeps the state it must
  find again after a restart (``bot.store.store.Store`` on SQLite, the evaluation's in-memory
  ``MemoryStore``).

Every order an executor accepts ends with an ``OrderClosed`` (filled, canceled, rejected or
expired, with what it filled): what it will not fill is closed, never left open, so the
Engine releases what it reserved for the order and stores its end.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from bot.core.events import Fact, MarketEvent, OrderDenied, OrderIntent, Signal
    from bot.core.orders import OrderClosed
    from bot.core.memory import BreakerMemory

    Facts = list[Fact | OrderClosed]


@runtime_checkable
class Clock(Protocol):
    def now_ms(self) -> int:
        """Current time in milliseconds since the epoch (UTC)."""
        ...

    def advance_to(self, ts_ms: int) -> None:
        """Market time reached ``ts_ms`` (a simulated clock follows it; a wall clock does not)."""
        ...


@runtime_checkable
class ProtectionPort(Protocol):
    """Exchange-side protective stop orders that follow a position."""

    async def protect(self, symbol: str, amount: float, stop_price: float, origin: int) -> Facts:
        """Make the exchange hold one stop for ``amount`` at ``stop_price`` (replace if it differs)."""
        ...

    async def unprotect(self, symbol: str) -> Facts:
        """Cancel the symbol's stop; returns its facts (fills, if it had triggered)."""
        ...

    def protected_symbols(self) -> set[str]:
        """Symbols with a live exchange-side stop (start-up re-arms or settles each)."""
        ...


@runtime_checkable
class ExecutionPort(Protocol):
    #: exchange-side stops that mirror the Engine's (``None``: this executor has none)
    protection: ProtectionPort | None

    async def submit(self, intent: OrderIntent, now_ms: int) -> Facts:
        """Place an approved intent; returns ``OrderSubmitted`` and any immediate fills."""
        ...

    async def on_market(self, event: MarketEvent) -> Facts:
        """Let resting orders react to new market data; returns the resulting fills."""
        ...

    async def cancel_all(self, now_ms: int, symbols: Sequence[str], *, keep_protective: bool,
                         entries_only: bool = False, reason: str = "canceled") -> tuple[int, Facts]:
        """Cancel our resting orders on ``symbols``: stop / take-profit legs stay with
        ``keep_protective`` (daemon shutdown), every sell with ``entries_only`` (an operator's
        halt). Returns how many were cancelled and the facts that close them."""
        ...


@runtime_checkable
class FactSink(Protocol):
    """Where the Engine's signals, decisions and facts go, and the state it finds after a restart."""

    def record(self, item: Fact | Signal) -> None:
        """Queue a fact or signal for the next ``flush``."""
        ...

    def record_decision(self, intent: OrderIntent, denial: OrderDenied | None) -> None:
        """Queue the risk gate's decision on ``intent``."""
        ...

    async def set_order_status(self, order_id: str, status: str, ts: int) -> None:
        """Queue an order's new status (a terminal status never changes again)."""
        ...

    async def flush(self) -> int:
        """Write what is queued; returns how many rows were written."""
        ...

    async def flush_behind(self) -> None:
        """Start writing what is queued without waiting for it (a replay's batches; while the
        previous such write is under way it may stay queued for the next call); every later
        call waits for what was queued, and raises its failure."""
        ...

    def record_breakers(self, memory: BreakerMemory, ts: int) -> None:
        """Queue the circuit breakers' memory (day-start equity, peak)."""
        ...

    async def load_breakers(self) -> BreakerMemory | None:
        """The breakers' memory last recorded, if any."""
        ...

    async def load_trading_state(self) -> tuple[str, str] | None:
        """The trading state (and its reason) an operator stored, if any."""
        ...
