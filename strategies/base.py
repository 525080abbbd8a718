"""The strategy interface: small, versioned, one required method.

A strategy sees only closed bars (``BarContext``) and answers with a ``Signal``:
the direction it wants to hold, how strongly, and how large a position it
recommends. It never sizes orders, never touches the exchange and never sees a
candle before that candle has closed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from bot.core.buffer import OHLCV
from bot.core.events import Candle, Direction, OrderBook, Signal, SignalExplained, Trade

if TYPE_CHECKING:
    from strategies.predictor import ModelHolder


class BarContext(NamedTuple):
    """What a strategy may look at when a bar closes (immutable; built once per bar and
    strategy, so a tuple rather than a frozen dataclass)."""

    candle: Candle  # the bar that just closed
    window: OHLCV  # recent closed bars, oldest first, ending with ``candle``
    position: float  # base units currently held in this symbol
    features: Any = None  # a feature window when the strategy declares it needs one


class Strategy(ABC):
    """Base class of every strategy. Subclasses implement ``evaluate``."""

    #: 2 added the hooks with defaults: ``history_bars``/``warm`` (restart), ``market_streams``/``on_market``,
    #: ``prepare_replay``/``deferred_explanations`` (backtests)
    interface_version: ClassVar[int] = 2
    #: bars of history needed before ``evaluate`` is called
    warmup: int = 1
    #: recommended position size (% of equity) when the strategy goes long
    default_size_pct: float = 10.0

    def __init__(self, name: str, symbols: tuple[str, ...], timeframe: str) -> None:
        self.name = name
        self.symbols = symbols
        self.timeframe = timeframe

    @abstractmethod
    def evaluate(self, ctx: BarContext) -> Signal | None:
        """Judge the bar that just closed; ``None`` means "no opinion"."""

    def market_streams(self) -> frozenset[str]:
        """Streams besides closed candles this strategy reads (``"order_book"``, ``"trades"``);
        the live feed subscribes to them and ``on_market`` receives them. Default: none."""
        return frozenset()

    def on_market(self, event: OrderBook | Trade) -> None:
        """A book update or public trade of one of ``symbols``, between bar closes (only for
        the streams ``market_streams`` names). Default: ignored."""

    def history_bars(self) -> int:
        """Closed bars of ``timeframe`` this strategy must have seen to be warm after a restart:
        from then on it gives the signals it would have given had it never stopped.
        Default: ``warmup`` (a strategy that reads only ``ctx.window``)."""
        return self.warmup

    def warm(self, ctx: BarContext) -> None:
        """Absorb one closed bar of history before trading starts (a restart), without signalling.

        Default: evaluate it and drop the signal, so whatever state the strategy keeps
        becomes what it would have been had it seen the bar live.
        """
        self.evaluate(ctx)

    def explain(self, signal: Signal) -> dict[str, float]:
        """Feature attributions of ``signal`` (one this strategy just returned), or ``{}``.

        The Engine asks after it has acted on the signal, so explaining never delays an
        order; the answer is stored with the signal. Default: no explanation.
        """
        return {}

    def prepare_replay(self, symbol: str, candles: Sequence[Candle]) -> None:
        """Told, before a finite replay (a backtest), every candle of ``symbol`` at this
        strategy's timeframe that the Engine will be shown, in order (some may be rejected).

        A strategy may precompute from them (the neural ensemble batches its predictions
        and its explanations), provided its signals stay those of bar-by-bar evaluation.
        Default: nothing.
        """

    def deferred_explanations(self) -> list[SignalExplained]:
        """Explanations held back during a prepared replay (``explain`` answered ``{}``),
        asked for once the replay has ended. Default: none."""
        return []

    def model_holders(self) -> Sequence[ModelHolder]:
        """The holders of the trained models this strategy predicts with, one per (symbol,
        timeframe): the retrainer swaps models in them, or holds their entries. Default: none."""
        return ()

    def signal(
        self, ctx: BarContext, direction: Direction, strength: float, reason: str = "", **extra: Any
    ) -> Signal:
        """Build a ``Signal`` for ``ctx`` with this strategy's identity filled in."""
        size = extra.pop("size_pct", self.default_size_pct if direction is Direction.LONG else 0.0)
        candle = ctx.candle  # once a bar: identity and bar positionally, cheaper than by keyword
        return Signal(self.name, candle.symbol, candle.timeframe, candle.close_ts, direction, strength,
                      size_pct=size, reason=reason, **extra)
