"""The order state machine and the durable order record of the exchange executor.

    new -> submitted -> accepted -> partially_filled -> filled
                    \\-> rejected          \\-> canceled / expired

``new``: written to SQLite, the request not yet known to have left. ``submitted``:
the request left; its outcome is unknown until the exchange answers or the order
is looked up by its client order id. Terminal states never change again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from enum import Enum

from bot.core.events import PROTECTIVE_LEGS, Fact, OrderIntent, OrderType, Side


class OrderState(str, Enum):
    NEW = "new"
    SUBMITTED = "submitted"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED, OrderState.EXPIRED})
_S = OrderState
ALLOWED: dict[OrderState, frozenset[OrderState]] = {
    _S.NEW: frozenset({_S.SUBMITTED, _S.ACCEPTED, _S.PARTIALLY_FILLED, _S.FILLED, _S.REJECTED,
                       _S.EXPIRED, _S.CANCELED}),
    _S.SUBMITTED: frozenset({_S.ACCEPTED, _S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED,
                             _S.REJECTED, _S.EXPIRED}),
    _S.ACCEPTED: frozenset({_S.PARTIALLY_FILLED, _S.FILLED, _S.CANCELED, _S.EXPIRED}),
    _S.PARTIALLY_FILLED: frozenset({_S.FILLED, _S.CANCELED, _S.EXPIRED}),
    _S.FILLED: frozenset(),
    _S.CANCELED: frozenset(),
    _S.REJECTED: frozenset(),
    _S.EXPIRED: frozenset(),
}


class IllegalTransition(ValueError):
    pass


def advance(current: OrderState, new: OrderState) -> OrderState:
    """The state after ``new`` is reported; staying put is always allowed."""
    if new is current:
        return current
    if new not in ALLOWED[current]:
        raise IllegalTransition(f"order cannot go from {current.value} to {new.value}")
    return new


def from_ccxt(status: str | None, filled: float) -> OrderState | None:
    """Our state for a ccxt unified order status (``None`` if ccxt did not say)."""
    if status == "open":
        return OrderState.PARTIALLY_FILLED if filled > 0 else OrderState.ACCEPTED
    return {
        "closed": OrderState.FILLED,
        "canceled": OrderState.CANCELED,
        "cancelled": OrderState.CANCELED,
        "rejected": OrderState.REJECTED,
        "expired": OrderState.EXPIRED,
    }.get(status or "")


def client_order_id(signal_id: str, symbol: str, leg: str, prefix: str = "nb") -> str:
    """Deterministic Binance-compatible client order id (``[A-Za-z0-9_-]{1,36}``).

    One id per (signal, symbol, leg): a retry or a restart can never make a second one.
    """
    digest = hashlib.sha256(f"{signal_id}|{symbol}|{leg}".encode()).hexdigest()
    return f"{prefix}{digest[: 32 - len(prefix)]}"


PROTECTIVE_PREFIX = "xstop-"  # signal ids of exchange-side protective stop orders


def stays_at_cancel(leg: str, side: Side, *, keep_protective: bool, entries_only: bool) -> bool:
    """Whether a resting order survives a cancel-all (``ExecutionPort.cancel_all``): stop /
    take-profit legs with ``keep_protective``, every sell with ``entries_only``."""
    return (keep_protective and leg in PROTECTIVE_LEGS) or (entries_only and side is not Side.BUY)


def is_protective_intent(intent_id: str) -> bool:
    """Whether ``intent_id`` names an exchange-side protective stop (not an engine intent)."""
    return intent_id.startswith(PROTECTIVE_PREFIX)


@dataclass(frozen=True, slots=True)
class OrderRecord:
    client_order_id: str
    intent_id: str
    signal_id: str
    symbol: str
    side: Side
    leg: str
    order_type: OrderType
    amount: float
    price: float | None
    reduce_only: bool
    stop_price: float | None
    take_profit: float | None
    state: OrderState
    created_ms: int
    updated_ms: int
    exchange_order_id: str = ""
    filled: float = 0.0
    error: str = ""

    @classmethod
    def from_intent(cls, intent: OrderIntent, cid: str, now_ms: int) -> OrderRecord:
        return cls(
            cid, intent.intent_id, intent.signal_id, intent.symbol, intent.side, intent.leg,
            intent.order_type, intent.amount, intent.price, intent.reduce_only,
            intent.stop_price, intent.take_profit, OrderState.NEW, now_ms, now_ms,
        )

    @property
    def protective(self) -> bool:
        return is_protective_intent(self.intent_id)

    @property
    def remaining(self) -> float:
        return max(0.0, self.amount - self.filled)

    def moved(self, state: OrderState, now_ms: int, **changes: object) -> OrderRecord:
        return replace(self, state=advance(self.state, state), updated_ms=now_ms, **changes)  # type: ignore[arg-type]

    def intent(self) -> OrderIntent:
        return OrderIntent(
            intent_id=self.intent_id, signal_id=self.signal_id, symbol=self.symbol,
            side=self.side, amount=self.amount, order_type=self.order_type, price=self.price,
            reduce_only=self.reduce_only, stop_price=self.stop_price,
            take_profit=self.take_profit, ts=self.created_ms, leg=self.leg,
        )


@dataclass(frozen=True, slots=True)
class OrderClosed:
    """An order reached a terminal state (the Engine releases what it held for it)."""

    order_id: str
    intent_id: str
    symbol: str
    state: OrderState
    filled: float
    ts: int
    reason: str = ""


Out = list[Fact | OrderClosed]  # what an executor call returns: facts and closed orders
