"""The risk gate: every ``OrderIntent`` passes ordered checks before it may trade.

Each check (``risk.checks``) is a small pure function ``(intent, ctx, limits) ->
reason | None``; the first that returns a reason denies the intent, and the
denial names the check. Exits (``reduce_only``) are never blocked by entry
limits; HALTED lets through only an operator's flatten and the protective stops of the bot's own positions. The gate fails closed: a check that
raises denies the intent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import structlog

from bot.events import OrderDenied, OrderIntent
from risk.breakers import DEFAULT_BREAKERS
from risk.checks import DEFAULT_CHECKS, Check
from risk.market import MarketRules
from risk.state import TradingState

__all__ = ["DEFAULT_CHECKS", "Check", "RiskContext", "RiskGate", "RiskLimits", "TradingState"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_position_pct: float = 10.0  # one trade, % of equity
    max_symbol_exposure_pct: float = 10.0  # everything held in one symbol, % of equity
    max_open_positions: int = 5
    max_heat_pct: float = 20.0  # sum of loss-to-stop over open positions, % of equity
    min_strength: float = 65.0
    require_stop: bool = True
    max_orders_per_minute: int | None = 30  # new entries per rolling minute
    daily_loss_limit_pct: float | None = 5.0  # -> REDUCING for the rest of the UTC day
    max_drawdown_pct: float | None = 15.0  # from the equity peak -> HALTED
    breakers: tuple[str, ...] = DEFAULT_BREAKERS  # risk.breakers plug-ins, asked in this order


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
    entered_signals: frozenset[str] | set[str] = field(default_factory=frozenset)
    orders_last_minute: int = 0
    market: MarketRules | None = None
    slippage_margin: float = 0.0  # fraction: fills may be this much worse than ``price``
    paused: str | None = None  # why an operator paused new entries on the intent's symbol

    @property
    def worst_price(self) -> float:
        """The highest price a buy is expected to fill at."""
        return self.price * (1.0 + self.slippage_margin)


class RiskGate:
    def __init__(self, limits: RiskLimits, checks: Sequence[Check] = DEFAULT_CHECKS) -> None:
        self.limits = limits
        self.checks = tuple(checks)

    def evaluate(self, intent: OrderIntent, ctx: RiskContext) -> OrderDenied | None:
        """``None`` if the intent may trade, else the denial naming the failed check."""
        for check in self.checks:
            try:
                reason = check(intent, ctx, self.limits)
            except Exception as exc:  # fail closed: a broken check denies (never retried)
                log.error("risk_check_failed", check=check.__name__, error=repr(exc))
                reason = f"check raised {type(exc).__name__}: {exc}"
            if reason is not None:
                return OrderDenied(intent.intent_id, intent.symbol, check.__name__, reason, intent.ts)
        return None
