"""The risk gate: every ``OrderIntent`` passes ordered checks before it may trade.

Each check (``risk.checks``) is a small pure function ``(intent, ctx, limits) ->
reason | None``; the first that returns a reason denies the intent, and the
denial names the check. Exits (``reduce_only``) are never blocked by entry
limits; HALTED lets through only an operator's flatten and the protective stops of the bot's own positions. The gate fails closed: a check that
raises denies the intent.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog

from bot.core.events import OrderDenied, OrderIntent
from risk.checks import DEFAULT_CHECKS, Check
from risk.limits import RiskContext, RiskLimits
from risk.state import TradingState

__all__ = ["DEFAULT_CHECKS", "Check", "RiskContext", "RiskGate", "RiskLimits", "TradingState"]

log = structlog.get_logger(__name__)


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
