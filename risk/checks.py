"""The risk checks: each a small pure function ``(intent, ctx, limits) -> reason | None``.

Reducing orders (``reduce_only`` exits and stops) are never blocked by entry
limits: a reducing bot can always get out; a halted one moves only when the operator
asks (``neuralbot halt --flatten``). Order of ``DEFAULT_CHECKS`` matters only
for which reason a denial names; every check is independent.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.core.events import PROTECTIVE_LEGS, OrderIntent, Side
from risk.limits import RiskContext, RiskLimits
from risk.market import minimums_problem
from risk.state import TradingState

Check = Callable[[OrderIntent, RiskContext, RiskLimits], str | None]
TOL = 1e-9


OPERATOR_LEGS = frozenset({"flatten"})  # legs an operator asks for (``neuralbot halt --flatten``)
# A halted bot still honours its own positions' protective legs: a stop the operator configured
# is a standing instruction, and the positions are only ever what the bot's own fills made.
HALTED_LEGS = OPERATOR_LEGS | PROTECTIVE_LEGS


def trading_state(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    """REDUCING lets reducing orders pass; HALTED only what the operator asks for (a flatten)
    and the protective legs (stop, take-profit, trailing stop) of the bot's own positions."""
    if ctx.state is TradingState.ACTIVE:
        return None
    if ctx.state is TradingState.HALTED:
        if intent.reduce_only and intent.leg in HALTED_LEGS:
            return None
        return "trading state is halted: only an operator's flatten and protective stops pass"
    if intent.reduce_only:
        return None
    return f"trading state is {ctx.state.value}: only reducing orders pass"


def symbol_paused(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    """An operator paused new entries on this symbol; its exits and stops still pass."""
    if intent.reduce_only or ctx.paused is None:
        return None
    return f"new entries on {intent.symbol} are paused: {ctx.paused}"


def duplicate_intent(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    if intent.intent_id in ctx.seen_intents:
        return f"intent {intent.intent_id} was already decided"
    return None


def duplicate_signal(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    """No second entry for a signal that already produced one (across restarts too)."""
    if intent.reduce_only or intent.signal_id not in ctx.entered_signals:
        return None
    return f"signal {intent.signal_id} already produced an entry"


def positive_amount(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    if not intent.amount > 0 or not ctx.price > 0:
        return f"amount {intent.amount} at price {ctx.price} is not a positive order"
    return None


def reduce_only_reduces(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    if intent.reduce_only and (
        intent.side is not Side.SELL or intent.amount > ctx.position * (1 + TOL)
    ):
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
    """One trade may not exceed ``max_position_pct`` of equity (at the worst expected fill)."""
    if intent.reduce_only:
        return None
    value = intent.amount * ctx.worst_price
    cap = ctx.equity * limits.max_position_pct / 100.0
    if value > cap * (1 + TOL):
        return f"order value {value:.2f} exceeds cap {cap:.2f} ({limits.max_position_pct}% of equity)"
    return None


def symbol_exposure(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    """What is held in one symbol after the trade may not exceed the per-symbol cap."""
    if intent.reduce_only:
        return None
    after = (ctx.position + intent.amount) * ctx.worst_price
    cap = ctx.equity * limits.max_symbol_exposure_pct / 100.0
    if after > cap * (1 + TOL):
        return (
            f"{intent.symbol} exposure {after:.2f} would exceed cap {cap:.2f}"
            f" ({limits.max_symbol_exposure_pct}% of equity)"
        )
    return None


def max_open_positions(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    if intent.reduce_only or ctx.position > 0 or ctx.open_positions < limits.max_open_positions:
        return None
    return f"{ctx.open_positions} positions open, maximum {limits.max_open_positions}"


def added_heat(intent: OrderIntent, ctx: RiskContext) -> float:
    """Loss to the stop this entry adds, padded by the slippage margin."""
    stop = intent.stop_price if intent.stop_price is not None else 0.0
    return max(0.0, ctx.price - stop) * intent.amount * (1.0 + ctx.slippage_margin)


def portfolio_heat(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    if intent.reduce_only:
        return None
    total = ctx.heat + added_heat(intent, ctx)
    cap = ctx.equity * limits.max_heat_pct / 100.0
    if total > cap * (1 + TOL):
        return f"heat {total:.2f} would exceed cap {cap:.2f} ({limits.max_heat_pct}% of equity)"
    return None


def order_rate(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    """New entries are throttled; exits and stops are never held back by the rate limit."""
    if intent.reduce_only or limits.max_orders_per_minute is None:
        return None
    if ctx.orders_last_minute >= limits.max_orders_per_minute:
        return f"{ctx.orders_last_minute} orders in the last minute, limit {limits.max_orders_per_minute}"
    return None


def exchange_minimums(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    if ctx.market is None:
        return None
    return minimums_problem(ctx.market, intent.amount, ctx.price)


def sufficient_balance(intent: OrderIntent, ctx: RiskContext, limits: RiskLimits) -> str | None:
    if intent.side is Side.SELL:
        if intent.amount > ctx.position * (1 + TOL):
            return f"sell of {intent.amount} exceeds holdings {ctx.position}"
        return None
    cost = intent.amount * ctx.worst_price * (1 + ctx.fee_rate)
    if cost > ctx.cash * (1 + TOL):
        return f"cost {cost:.2f} exceeds free cash {ctx.cash:.2f}"
    return None


DEFAULT_CHECKS: tuple[Check, ...] = (
    trading_state,
    symbol_paused,
    duplicate_intent,
    duplicate_signal,
    positive_amount,
    reduce_only_reduces,
    min_strength,
    stop_required,
    max_position_size,
    symbol_exposure,
    max_open_positions,
    portfolio_heat,
    order_rate,
    exchange_minimums,
    sufficient_balance,
)
