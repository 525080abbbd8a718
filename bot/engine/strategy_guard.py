"""The one door into strategy code: every call the Engine makes into a strategy goes
through :class:`StrategyGuard`.

A call that raises is logged with its traceback, counted, and becomes a frozen
``StrategyFailed`` fact (stored); the Engine carries on with the next strategy and the
next bar. After ``max_failures`` failures in a row a strategy is disabled for the rest
of the run: it is called no more, while the Engine keeps protecting the positions it
opened (stops, targets and trailing do not depend on it). A success resets the count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import structlog

from bot.core.events import StrategyFailed
from strategies.base import Strategy

log = structlog.get_logger("bot.engine.engine")

A = TypeVar("A")
T = TypeVar("T")


class StrategyGuard:
    def __init__(self, max_failures: int, on_failure: Callable[[StrategyFailed], None]) -> None:
        self.max_failures = max(1, max_failures)
        self._on_failure = on_failure  # told every failure fact (the Engine counts and stores it)
        self._in_a_row: dict[str, int] = {}
        self.disabled: set[str] = set()
        self.failures = 0

    def active(self, strategy: Strategy) -> bool:
        return strategy.name not in self.disabled

    def call(self, strategy: Strategy, what: str, symbol: str, ts: int, fn: Callable[[A], T], arg: A) -> T | None:
        """``fn(arg)``'s result, or ``None`` when strategy code raised (its failure fact goes to
        ``on_failure``). One argument, no closure: it runs once per bar and strategy."""
        try:
            result = fn(arg)
        except Exception as exc:  # strategy code is foreign: any error is its failure, never ours
            self.failures += 1
            n = self._in_a_row[strategy.name] = self._in_a_row.get(strategy.name, 0) + 1
            disabled = n >= self.max_failures
            if disabled:
                self.disabled.add(strategy.name)
            log.error("strategy_failed", strategy=strategy.name, call=what, symbol=symbol, ts=ts,
                      consecutive=n, disabled=disabled, error=repr(exc), exc_info=True)
            self._on_failure(StrategyFailed(strategy.name, symbol, ts, what, f"{type(exc).__name__}: {exc}"[:500],
                                            n, disabled))
            return None
        self._in_a_row[strategy.name] = 0
        return result
