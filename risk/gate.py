"""The risk gate: every ``OrderIntent`` passes ordered checks before it may trade.

Each check is a small pure function ``(intent, ctx, limits) -> reason | None``;
the first that returns a reason denies the intent, and the denial names the
check. Exits (``reduce_only``) are never blocked by entry limits: a halted bot can
always get out. The gate fails closed: a check that raises denies the intent.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

import structlog

from bot.events import OrderDenied, OrderIntent, Side

log = structlog.get_logger(__name__)


class TradingState(str, Enum):
    ACTIVE = "active"
    REDUCING = "reducing"  # no new entries; exits and stops keep working
    HALTED = "halted"  # nothing but reducing orders


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_position_pct: float = 10.0
    max_open_positions: int = 5
    max_heat_pct: float = 20.0
    min_strength: float = 65.0
    require_stop: bool = True


@dataclass(frozen=True, slots=True)
class RiskContext:
    """Everything a check may look at, frozen at the moment of the decision."""

    state: TradingState
    equity: float
    cash: float
    price: float  # reference price of the intent's symbol
    position: float  # base units held in the intent's symbol
    open_positions: int
    heat: float  # current portfolio heat in quote currency
    fee_rate: float = 0.0
    seen_intents: frozenset[str] | set[str] = field(default_factory=frozenset)


Check = Callable[[OrderIntent, RiskContext, RiskLimits], str | None]


def trading_state(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    if intent.reduce_only or ctx.state is TradingState.ACTIVE:
        return None
    return f"trading state is {ctx.state.value}: only reducing orders pass"


def duplicate_intent(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    if intent.intent_id in ctx.seen_intents:
        return f"intent {intent.intent_id} was already decided"
    return None


def positive_amount(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    if not intent.amount > 0 or not ctx.price > 0:
        return f"amount {intent.amount} at price {ctx.price} is not a positive order"
    return None


def reduce_only_reduces(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    if intent.reduce_only and (intent.side is not Side.SELL or intent.amount > ctx.position * (1 + 1e-9)):
        return f"reduce-only {intent.side.value} of {intent.amount} exceeds position {ctx.position}"
    return None


def min_strength(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    if intent.reduce_only or intent.strength >= limits.min_strength:
        return None
    return f"signal strength {intent.strength:.1f} below minimum {limits.min_strength:.1f}"


def stop_required(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    if intent.reduce_only or not limits.require_stop:
        return None
    if intent.stop_price is None or not 0 < intent.stop_price < ctx.price:
        return f"entry needs a stop below the price {ctx.price}, got {intent.stop_price}"
    return None


def max_position_size(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    if intent.reduce_only:
        return None
    after = (ctx.position + intent.amount) * ctx.price
    cap = ctx.equity * limits.max_position_pct / 100.0
    if after > cap * (1 + 1e-9):
        return f"position value {after:.2f} would exceed cap {cap:.2f} ({limits.max_position_pct}% of equity)"
    return None


def max_open_positions(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    if intent.reduce_only or ctx.position > 0 or ctx.open_positions < limits.max_open_positions:
        return None
    return f"{ctx.open_positions} positions open, maximum {limits.max_open_positions}"


def portfolio_heat(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    if intent.reduce_only:
        return None
    stop = intent.stop_price if intent.stop_price is not None else 0.0
    added = max(0.0, ctx.price - stop) * intent.amount
    cap = ctx.equity * limits.max_heat_pct / 100.0
    if ctx.heat + added > cap * (1 + 1e-9):
        return f"heat {ctx.heat + added:.2f} would exceed cap {cap:.2f} ({limits.max_heat_pct}% of equity)"
    return None


def sufficient_balance(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    if intent.side is Side.SELL:
        return None
    cost = intent.amount * ctx.price * (1 + ctx.fee_rate)
    if cost > ctx.cash * (1 + 1e-9):
        return f"cost {cost:.2f} exceeds free cash {ctx.cash:.2f}"
    return None


DEFAULT_CHECKS: tuple[Check, ...] = (
    trading_state,
    duplicate_intent,
    positive_amount,
    reduce_only_reduces,
    min_strength,
    stop_required,
    max_position_size,
    max_open_positions,
    portfolio_heat,
    sufficient_balance,
)


class RiskGate:
    def __init__(self, limits: RiskLimits, checks: Sequence[Check] = DEFAULT_CHECKS) -> None:
        self.limits = limits
        self.checks = tuple(checks)

    def evaluate(self, intent: OrderIntent, ctx: RiskContext) -> OrderDenied | None:
        """``None`` if the intent may trade, else the denial naming the failed check."""
        for check in self.checks:
            try:
                reason = check(intent, ctx, self.limits)
            except Exception as exc:  # fail closed: a broken check denies
                log.error("risk_check_failed", check=check.__name__, error=repr(exc))
                reason = f"check raised {type(exc).__name__}: {exc}"
            if reason is not None:
                return OrderDenied(intent.intent_id, intent.symbol, check.__name__, reason, intent.ts)
        return None
