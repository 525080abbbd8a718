"""What the risk gate judges with: the configured limits and the context frozen at a decision."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.core.fast_init import fast_init
from risk.market import MarketRules
from risk.state import TradingState

DEFAULT_BREAKERS = ("max_drawdown", "daily_loss")  # risk.breakers plug-ins by name, asked in this order


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


@fast_init  # built once per intent judged
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
