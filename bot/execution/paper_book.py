"""Paper execution against the current order book.

* Market orders walk the opposite side level by level and fill at the VWAP of what
  they took (one ``OrderFilled`` per match); what the book cannot supply within
  ``max_slippage_bps`` of the touch expires.
* Limit orders take what is marketable at once (taker), the rest rests and fills
  at its limit price (maker) when a later book crosses it or a trade prints
  through it; partial fills included.
* Liquidity we took is remembered per price level, so displayed size cannot fill
  twice: a level's available size is its displayed size minus what we consumed,
  and our consumption decays only as the displayed size itself shrinks.
* ``latency_ms``: an order reaches the book that long after submission and
  matches against the first book at or after that time.
* Fees: the market's maker/taker rates, charged in quote.
* No book for a symbol (candle-only backtests): market orders fill at the next
  candle's open moved by ``slippage_bps``; limits fill when the bar trades through.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from bot.core.events import (
    PROTECTIVE_LEGS,
    Candle,
    Fact,
    MarketEvent,
    OrderBook,
    OrderFilled,
    OrderIntent,
    OrderSubmitted,
    OrderType,
    Side,
    Trade,
)
from bot.core.orders import OrderClosed, OrderState, stays_at_cancel
from bot.core.ports import ProtectionPort

# exits at a protective level, and flatten: never price-protected; without a book they fill at their price
RESTING_EXIT_LEGS = PROTECTIVE_LEGS | {"flatten"}
EPS = 1e-12
Level = tuple[float, float]


@dataclass(frozen=True, slots=True)
class Fees:
    maker: float = 0.001
    taker: float = 0.001


@dataclass(slots=True)
class PaperOrder:
    order_id: str
    intent_id: str
    symbol: str
    side: Side
    order_type: OrderType
    amount: float
    limit: float | None
    active_ms: int
    filled: float = 0.0
    fills: int = 0
    rested: bool = False  # has met the book once: later crosses fill it as maker
    protect: float | None = None  # worst acceptable price of a protected market order

    @property
    def left(self) -> float:
        return self.amount - self.filled


@dataclass(slots=True)
class _SideBook:
    """Displayed levels of one side plus what we consumed from them."""

    levels: dict[float, float] = field(default_factory=dict)
    consumed: dict[float, float] = field(default_factory=dict)

    def update(self, levels: Sequence[Level]) -> None:
        new = {p: q for p, q in levels}
        for price, used in list(self.consumed.items()):
            shown_before = self.levels.get(price, 0.0)
            shown_now = new.get(price, 0.0)
            if shown_now <= EPS:
                del self.consumed[price]
                continue
            shrink = max(0.0, shown_before - shown_now)
            left = used - shrink
            if left <= EPS:
                del self.consumed[price]
            else:
                self.consumed[price] = min(left, shown_now)
        self.levels = new

    def available(self, price: float) -> float:
        return max(0.0, self.levels.get(price, 0.0) - self.consumed.get(price, 0.0))

    def take(self, price: float, qty: float) -> None:
        self.consumed[price] = self.consumed.get(price, 0.0) + qty


def walk(levels: Sequence[Level], qty: float, limit: float | None, buy: bool) -> list[Level]:
    """What ``qty`` takes from ``levels`` (best first) no worse than ``limit``: (price, qty) pairs."""
    out: list[Level] = []
    left = qty
    for price, avail in levels:
        if left <= EPS:
            break
        if limit is not None and ((buy and price > limit + EPS) or (not buy and price < limit - EPS)):
            break
        take = min(left, avail)
        if take > EPS:
            out.append((price, take))
            left -= take
    return out


def vwap(takes: Sequence[Level]) -> tuple[float, float]:
    qty = sum(q for _, q in takes)
    return (sum(p * q for p, q in takes) / qty if qty > 0 else 0.0), qty


class PaperBookExecutor:
    protection: ProtectionPort | None = None  # paper orders live here: no exchange-side stops

    def __init__(
        self,
        fees: dict[str, Fees] | None = None,
        default_fees: Fees | None = None,
        latency_ms: int = 0,
        slippage_bps: float = 5.0,
        max_slippage_bps: float = 100.0,
        cash: Callable[[], float] | None = None,
        protection_bps: float | None = None,
    ) -> None:
        self.fees = fees or {}
        self.default_fees = default_fees or Fees()
        self.latency_ms = latency_ms
        self.slippage = slippage_bps / 10_000.0
        self.max_slippage = max_slippage_bps / 10_000.0
        self._cash = cash
        # entries never fill worse than their reference price by more than this (price protection)
        self.price_protection = None if protection_bps is None else protection_bps / 10_000.0
        self.books: dict[str, tuple[_SideBook, _SideBook]] = {}  # symbol -> (bids, asks)
        self.book_ts: dict[str, int] = {}
        self.open: dict[str, PaperOrder] = {}

    # -- port ---------------------------------------------------------------------

    async def submit(self, intent: OrderIntent, now_ms: int) -> list[Fact | OrderClosed]:
        order = PaperOrder(
            intent.intent_id, intent.intent_id, intent.symbol, intent.side, intent.order_type,
            intent.amount, intent.price if intent.order_type is OrderType.LIMIT else None,
            now_ms + self.latency_ms,
        )
        if (
            self.price_protection is not None and intent.leg not in RESTING_EXIT_LEGS
            and not intent.reduce_only and intent.order_type is OrderType.MARKET and intent.price
        ):
            order.protect = intent.price * (
                1 + self.price_protection if intent.side is Side.BUY else 1 - self.price_protection
            )
        out: list[Fact | OrderClosed] = [OrderSubmitted(
            order.order_id, intent.intent_id, intent.symbol, intent.side, intent.amount,
            intent.order_type, intent.price, now_ms,
        )]
        self.open[order.order_id] = order
        if intent.symbol not in self.books and intent.leg in RESTING_EXIT_LEGS and intent.price:
            out += self._fill(order, intent.price * self._slip(order.side), now_ms, "taker")
            out += self._close_if_done(order, now_ms, final=True)
        elif intent.symbol in self.books and self.latency_ms <= 0:
            out += self._match_book(order, now_ms)
        return out

    async def on_market(self, event: MarketEvent) -> list[Fact | OrderClosed]:
        if isinstance(event, OrderBook):
            bids, asks = self.books.setdefault(event.symbol, (_SideBook(), _SideBook()))
            bids.update(event.bids)
            asks.update(event.asks)
            self.book_ts[event.symbol] = event.ts
            return self._match_all(event.symbol, event.ts, lambda o: self._match_book(o, event.ts))
        if isinstance(event, Trade):
            return self._match_all(event.symbol, event.ts, lambda o: self._match_trade(o, event))
        if isinstance(event, Candle) and event.symbol not in self.books:
            return self._match_all(event.symbol, event.ts, lambda o: self._match_candle(o, event))
        return []

    # -- matching -------------------------------------------------------------------

    def _match_all(
        self, symbol: str, ts: int, match: Callable[[PaperOrder], list[Fact | OrderClosed]]
    ) -> list[Fact | OrderClosed]:
        out: list[Fact | OrderClosed] = []
        for order in [o for o in self.open.values() if o.symbol == symbol and o.active_ms <= ts]:
            out += match(order)
        return out

    def _match_book(self, order: PaperOrder, ts: int) -> list[Fact | OrderClosed]:
        bids, asks = self.books[order.symbol]
        buy = order.side is Side.BUY
        book = asks if buy else bids
        levels = sorted(book.levels.items(), reverse=not buy)
        if not levels:
            return []
        touch = levels[0][0]
        limit = order.limit
        if limit is None:
            limit = touch * (1 + self.max_slippage) if buy else touch * (1 - self.max_slippage)
            if order.protect is not None:
                limit = min(limit, order.protect) if buy else max(limit, order.protect)
        takes = walk([(p, book.available(p)) for p, _ in levels], order.left, limit, buy)
        out: list[Fact | OrderClosed] = []
        maker = order.rested and order.limit is not None
        order.rested = True
        if takes:
            price, qty = (order.limit, sum(q for _, q in takes)) if maker else vwap(takes)
            assert price is not None
            qty = self._afford(order, price, qty)
            if qty > EPS:
                scale = qty / sum(q for _, q in takes)
                for p, q in takes:
                    book.take(p, q * scale)
                out += self._fill(order, price, ts, "maker" if maker else "taker", qty)
        return out + self._close_if_done(order, ts, final=order.order_type is OrderType.MARKET)

    def _match_trade(self, order: PaperOrder, trade: Trade) -> list[Fact | OrderClosed]:
        """A resting limit fills (maker) when a print trades through its price."""
        if order.limit is None:
            return []
        if order.side is Side.BUY and trade.price < order.limit - EPS or (
            order.side is Side.SELL and trade.price > order.limit + EPS
        ):
            qty = self._afford(order, order.limit, min(order.left, trade.amount))
            out = self._fill(order, order.limit, trade.ts, "maker", qty) if qty > EPS else []
            return out + self._close_if_done(order, trade.ts, final=False)
        return []

    def _match_candle(self, order: PaperOrder, candle: Candle) -> list[Fact | OrderClosed]:
        buy = order.side is Side.BUY
        if order.limit is None:
            price = candle.open * self._slip(order.side)
            if order.protect is not None and (price > order.protect if buy else price < order.protect):
                return self._close_if_done(order, candle.ts, final=True)  # gapped past protection
            return self._fill(order, price, candle.ts, "taker") + self._close_if_done(
                order, candle.ts, final=True
            )
        crossed = candle.low < order.limit if buy else candle.high > order.limit
        if not crossed:
            return []
        price = min(order.limit, candle.open) if buy else max(order.limit, candle.open)
        return self._fill(order, price, candle.ts, "maker") + self._close_if_done(order, candle.ts, False)

    # -- helpers ----------------------------------------------------------------------

    def _slip(self, side: Side) -> float:
        return 1.0 + self.slippage if side is Side.BUY else 1.0 - self.slippage

    def _fee(self, symbol: str, liquidity: str) -> float:
        f = self.fees.get(symbol, self.default_fees)
        return f.maker if liquidity == "maker" else f.taker

    def _afford(self, order: PaperOrder, price: float, qty: float) -> float:
        if order.side is not Side.BUY or self._cash is None or price <= 0:
            return qty
        rate = self._fee(order.symbol, "taker")
        return min(qty, max(0.0, self._cash()) / (price * (1.0 + rate)))

    def _fill(
        self, order: PaperOrder, price: float, ts: int, liquidity: str, qty: float | None = None
    ) -> list[Fact | OrderClosed]:
        qty = self._afford(order, price, order.left) if qty is None else qty
        if qty <= EPS:
            return []
        order.filled += qty
        order.fills += 1
        fee = qty * price * self._fee(order.symbol, liquidity)
        return [OrderFilled(
            order.order_id, f"{order.order_id}#{order.fills}", order.symbol, order.side, qty,
            price, fee, ts, liquidity,
        )]

    def _close_if_done(self, order: PaperOrder, ts: int, final: bool) -> list[Fact | OrderClosed]:
        done = order.left <= max(EPS, order.amount * 1e-9)
        if not (done or final):
            return []
        self.open.pop(order.order_id, None)
        state = OrderState.FILLED if done else OrderState.EXPIRED
        reason = "" if done else f"book could not supply {order.left:.8g} within the price band"
        return [OrderClosed(order.order_id, order.intent_id, order.symbol, state, order.filled, ts, reason)]

    async def cancel_all(self, now_ms: int, symbols: Sequence[str], *, keep_protective: bool,
                         entries_only: bool = False, reason: str = "canceled") -> tuple[int, list[Fact | OrderClosed]]:
        """Cancel resting orders on ``symbols`` (``ExecutionPort.cancel_all``)."""
        out: list[Fact | OrderClosed] = []
        for order in list(self.open.values()):
            if order.symbol not in symbols or stays_at_cancel(
                    order.intent_id.rsplit(":", 1)[-1], order.side, keep_protective=keep_protective,
                    entries_only=entries_only):
                continue
            self.open.pop(order.order_id)
            out.append(OrderClosed(order.order_id, order.intent_id, order.symbol,
                                   OrderState.CANCELED, order.filled, now_ms, reason))
        return len(out), out
