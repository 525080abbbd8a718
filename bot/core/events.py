"""Frozen, typed events: market data in, decisions and facts out.

Every component of the bot talks in these. Market data (``Candle``, ``OrderBook``,
``Trade``) flows from a feed into the Engine; decisions (``Signal``,
``OrderIntent``) flow from strategies through the risk gate; facts (past tense:
``OrderDenied``, ``OrderSubmitted``, ``OrderFilled``, ``PositionChanged``,
``EquitySnapshot``, ``TradingStateChanged``) are what happened and are persisted by the store.

Timestamps are integer milliseconds since the Unix epoch (UTC), as exchanges
publish them. Prices and quantities are floats in quote / base units. Each is a frozen
slotted dataclass whose ``__init__`` is :func:`bot.core.fast_init.fast_init`'s (the hot path
builds several per bar).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

from bot.core.fast_init import fast_init
from bot.core.timeframes import TIMEFRAME_MS, timeframe_ms  # re-exported: most callers import them from here


class Side(str, Enum):
    BUY = "buy"
    SELL = "sell"


class OrderType(str, Enum):
    MARKET = "market"
    LIMIT = "limit"


class Direction(str, Enum):
    """What a strategy wants to hold. The bot trades spot: long or flat."""

    LONG = "long"
    FLAT = "flat"


# ---------------------------------------------------------------------------
# Market data
# ---------------------------------------------------------------------------


@fast_init
@dataclass(frozen=True, slots=True)
class Candle:
    """One closed OHLCV bar; ``ts`` is the bar's open time (ms)."""

    exchange: str
    symbol: str
    timeframe: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    # fetched over REST to fill a gap and closed longer ago than the feed's grace: such a bar
    # warms state and moves stops, but the Engine opens no position on it
    backfilled: bool = field(default=False, compare=False)

    @property
    def close_ts(self) -> int:
        """The instant the bar closes: the earliest time anyone may act on it."""
        return self.ts + timeframe_ms(self.timeframe)

    def problem(self) -> str | None:
        """Why this candle is unusable, or ``None`` if it is sane."""
        # one check for all five: NaN and infinities propagate through the sum
        total = self.open + self.high + self.low + self.close + self.volume
        if not math.isfinite(total):
            return "non-finite value"
        # the common case in one chain, which passes exactly when every check below does where
        # comparisons are exact (Python floats and ints: a float sum); numpy scalars take the checks
        if type(total) is float and 0.0 < self.low <= self.open <= self.high and self.low <= self.close <= self.high \
                and self.volume >= 0:
            return None
        if min(self.open, self.high, self.low, self.close) <= 0:
            return "non-positive price"
        if self.high < self.low:
            return "high below low"
        if self.high < max(self.open, self.close) or self.low > min(self.open, self.close):
            return "open/close outside high-low range"
        if self.volume < 0:
            return "negative volume"
        return None


@fast_init
@dataclass(frozen=True, slots=True)
class Trade:
    """One public trade print."""

    exchange: str
    symbol: str
    ts: int
    price: float
    amount: float
    side: Side
    trade_id: str = ""


@fast_init
@dataclass(frozen=True, slots=True)
class OrderBook:
    """An L2 snapshot: bids descending, asks ascending, as (price, amount) pairs."""

    exchange: str
    symbol: str
    ts: int
    bids: tuple[tuple[float, float], ...]
    asks: tuple[tuple[float, float], ...]
    sequence: int = 0

    @property
    def best_bid(self) -> float | None:
        return self.bids[0][0] if self.bids else None

    @property
    def best_ask(self) -> float | None:
        return self.asks[0][0] if self.asks else None

    @property
    def mid(self) -> float | None:
        if not self.bids or not self.asks:
            return None
        return (self.bids[0][0] + self.asks[0][0]) / 2.0


MarketEvent = Candle | Trade | OrderBook


# ---------------------------------------------------------------------------
# Decisions
# ---------------------------------------------------------------------------


@fast_init
@dataclass(frozen=True, slots=True)
class Signal:
    """A strategy's evaluation of one closed bar, acted on or not.

    ``strength`` is 0-100; ``size_pct`` the recommended position size in percent
    of equity (0 means "no entry"). ``votes`` maps model name to the direction it
    voted; ``attributions`` maps feature name to its share of the decision.
    """

    strategy: str
    symbol: str
    timeframe: str
    ts: int  # close time of the bar that produced it (ms)
    direction: Direction
    strength: float
    probability: float | None = None
    confidence_low: float | None = None
    confidence_high: float | None = None
    horizon: str = ""
    risk_level: str = ""  # "low" | "medium" | "high" or "" when unknown
    size_pct: float = 0.0
    votes: dict[str, str] = field(default_factory=dict)
    attributions: dict[str, float] = field(default_factory=dict)
    reason: str = ""

    @property
    def signal_id(self) -> str:
        """Deterministic identity: one signal per strategy, symbol and bar."""
        return f"{self.strategy}:{self.symbol}:{self.timeframe}:{self.ts}"


@fast_init
@dataclass(frozen=True, slots=True)
class SignalExplained:
    """Feature attributions of a stored signal, computed after the Engine acted on it
    (off the order path: the order leaves first, the explanation follows)."""

    signal_id: str
    ts: int
    attributions: dict[str, float]


#: ``OrderIntent.leg`` values that exit a position because a protective level was hit.
PROTECTIVE_LEGS = frozenset({"stop", "take_profit", "trailing_stop"})


@fast_init
@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What a strategy (via sizing) would like to trade, before the risk gate."""

    intent_id: str  # deterministic: "<signal_id>:<leg>"
    signal_id: str
    symbol: str
    side: Side
    amount: float  # base units
    order_type: OrderType = OrderType.MARKET
    price: float | None = None  # limit price, or reference price for market orders
    reduce_only: bool = False
    stop_price: float | None = None  # protective stop for entries
    take_profit: float | None = None
    strength: float = 0.0
    ts: int = 0
    leg: str = "entry"  # entry | exit | stop | take_profit | trailing_stop | flatten


# ---------------------------------------------------------------------------
# Facts
# ---------------------------------------------------------------------------


@fast_init
@dataclass(frozen=True, slots=True)
class OrderDenied:
    intent_id: str
    symbol: str
    check: str
    reason: str
    ts: int


@fast_init
@dataclass(frozen=True, slots=True)
class OrderSubmitted:
    order_id: str  # client order id (deterministic)
    intent_id: str
    symbol: str
    side: Side
    amount: float
    order_type: OrderType
    price: float | None
    ts: int
    exchange_order_id: str = ""


@fast_init
@dataclass(frozen=True, slots=True)
class OrderFilled:
    order_id: str
    trade_id: str
    symbol: str
    side: Side
    amount: float
    price: float
    fee: float  # in quote currency
    ts: int
    liquidity: str = "taker"  # taker | maker


@fast_init
@dataclass(frozen=True, slots=True)
class PositionChanged:
    symbol: str
    amount: float  # base units held after the change (0 = flat)
    avg_price: float
    stop_price: float | None
    take_profit: float | None
    realized_pnl: float  # cumulative realised PnL of this symbol, after fees
    ts: int


@fast_init
@dataclass(frozen=True, slots=True)
class EquitySnapshot:
    ts: int
    cash: float
    equity: float
    exposure: float  # market value of open positions
    heat: float = 0.0  # sum of loss-to-stop over open positions, in quote


@fast_init
@dataclass(frozen=True, slots=True)
class StrategyFailed:
    """A call into strategy code raised (``bot.engine.strategy_guard``); ``disabled``: no more calls."""

    strategy: str
    symbol: str
    ts: int
    call: str  # evaluate | explain | warm
    error: str
    consecutive: int  # failures in a row, this one included
    disabled: bool


@fast_init
@dataclass(frozen=True, slots=True)
class TradingStateChanged:
    """The trading state moved (``active`` / ``reducing`` / ``halted``): a breaker, an operator,
    a restart or a shutdown (``risk.trading_state``)."""

    ts: int
    old: str
    new: str
    reason: str


Fact = (OrderDenied | OrderSubmitted | OrderFilled | PositionChanged | EquitySnapshot | SignalExplained
        | StrategyFailed | TradingStateChanged)
