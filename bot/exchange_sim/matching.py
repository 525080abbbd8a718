"""Accounts, orders and matching of the loopback exchange (Binance spot semantics, simplified).

Orders match against the exchange's current book without consuming it (the book is the
recorded market; our orders are assumed too small to move it). Marketable orders fill
as taker by walking the levels; resting limit orders fill as maker when the book crosses
their price. Commission is charged in the asset received, like Binance.

Stop orders (``STOP_LOSS``, ``STOP_LOSS_LIMIT``) rest untriggered (``isWorking`` false,
their amount locked) until the traded price crosses ``stopPrice`` (a sell: at or below;
a buy: at or above); then a ``STOP_LOSS`` fills like a market order and a
``STOP_LOSS_LIMIT`` like a limit order at its price (resting if not marketable). A
stop that would trigger at once is rejected, like Binance (-2010).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from bot.exchange_sim.market import Level


class OrderError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


@dataclass(slots=True)
class Market:
    symbol: str  # unified, BTC/USDT
    mid: str  # BTCUSDT
    base: str
    quote: str


@dataclass(slots=True)
class SimOrder:
    order_id: int
    client_id: str
    market: Market
    side: str  # BUY | SELL
    type: str  # MARKET | LIMIT | STOP_LOSS | STOP_LOSS_LIMIT
    price: float
    qty: float
    time_in_force: str
    created: int
    executed: float = 0.0
    quote_executed: float = 0.0
    status: str = "NEW"
    updated: int = 0
    locked: float = 0.0  # what is still locked in the balance for this order
    fills: list[dict] = field(default_factory=list)
    stop_price: float = 0.0
    triggered: bool = False

    @property
    def is_stop(self) -> bool:
        return self.type in STOP_TYPES

    @property
    def working(self) -> bool:
        """Matching: a plain order, or a stop that has triggered."""
        return not self.is_stop or self.triggered

    def as_binance(self) -> dict:
        return {
            "symbol": self.market.mid, "orderId": self.order_id, "orderListId": -1,
            "clientOrderId": self.client_id, "price": repr(self.price),
            "origQty": repr(self.qty), "executedQty": repr(self.executed),
            "cummulativeQuoteQty": repr(self.quote_executed), "status": self.status,
            "timeInForce": self.time_in_force, "type": self.type, "side": self.side,
            "stopPrice": repr(self.stop_price), "icebergQty": "0.0", "time": self.created,
            "updateTime": self.updated or self.created, "isWorking": self.working,
            "workingTime": self.created, "origQuoteOrderQty": "0.0",
            "selfTradePreventionMode": "NONE",
        }


STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT")
ORDER_TYPES = ("MARKET", "LIMIT", *STOP_TYPES)
Book = Callable[[str], tuple[list[Level], list[Level]]]
Listener = Callable[[SimOrder, dict | None], None]


class Matcher:
    def __init__(
        self, markets: dict[str, Market], balances: dict[str, float], taker_fee: float,
        maker_fee: float, book: Book, now_ms: Callable[[], int],
        price: Callable[[str], float | None] | None = None,
    ) -> None:
        self.markets = markets
        self.free: dict[str, float] = dict(balances)
        self.locked: dict[str, float] = {}
        self.taker_fee = taker_fee
        self.maker_fee = maker_fee
        self._book = book
        self._now = now_ms
        self._price = price
        self.orders: dict[int, SimOrder] = {}
        self.trades: list[dict] = []
        self.listeners: list[Listener] = []
        self._next_order = 1
        self._next_trade = 1

    # -- balances ---------------------------------------------------------------------

    def _lock(self, asset: str, amount: float) -> None:
        if self.free.get(asset, 0.0) + 1e-12 < amount:
            raise OrderError(-2010, "Account has insufficient balance for requested action.")
        self.free[asset] = self.free.get(asset, 0.0) - amount
        self.locked[asset] = self.locked.get(asset, 0.0) + amount

    def _unlock(self, asset: str, amount: float) -> None:
        self.locked[asset] = self.locked.get(asset, 0.0) - amount
        self.free[asset] = self.free.get(asset, 0.0) + amount

    def balances(self) -> list[dict]:
        assets = sorted(set(self.free) | set(self.locked))
        return [{"asset": a, "free": repr(max(0.0, self.free.get(a, 0.0))),
                 "locked": repr(max(0.0, self.locked.get(a, 0.0)))} for a in assets]

    # -- orders -----------------------------------------------------------------------

    def place(self, mid: str, side: str, type_: str, qty: float, price: float | None,
              tif: str, client_id: str | None, stop_price: float | None = None) -> SimOrder:
        market = self.markets.get(mid)
        if market is None:
            raise OrderError(-1121, "Invalid symbol.")
        if side not in ("BUY", "SELL") or type_ not in ORDER_TYPES:
            raise OrderError(-1116, "Invalid orderType or side.")
        if qty <= 0:
            raise OrderError(-1013, "Invalid quantity.")
        if type_ in ("LIMIT", "STOP_LOSS_LIMIT") and (price is None or price <= 0):
            raise OrderError(-1013, "Invalid price.")
        if client_id and any(o.client_id == client_id and o.status in ("NEW", "PARTIALLY_FILLED")
                             for o in self.orders.values()):
            raise OrderError(-2010, "Duplicate order sent.")
        bids, asks = self._book(mid)
        levels = asks if side == "BUY" else bids
        if not levels:
            raise OrderError(-2010, "No liquidity.")
        if type_ in STOP_TYPES:
            return self._place_stop(market, side, type_, qty, price, tif, client_id, stop_price)
        now = self._now()
        if type_ == "MARKET":
            est = _walk(levels, qty, None, True)[1] * (1 + self.taker_fee) if side == "BUY" else qty
        else:
            est = qty * price if side == "BUY" else qty  # type: ignore[operator]
        asset = market.quote if side == "BUY" else market.base
        self._lock(asset, est)
        order = SimOrder(self._next_order, client_id or f"sim-{self._next_order}", market, side,
                         type_, price or 0.0, qty, tif if type_ == "LIMIT" else "GTC", now,
                         locked=est)
        self._next_order += 1
        self.orders[order.order_id] = order
        self._emit(order, None)
        limit = price if type_ == "LIMIT" else None
        fills, _ = _walk(levels, qty, limit, side == "BUY")
        for fill_price, fill_qty in fills:
            self._fill(order, fill_price, fill_qty, maker=False)
        if order.status != "FILLED" and (type_ == "MARKET" or tif in ("IOC", "FOK")):
            self._finish(order, "EXPIRED")
        return order

    def _place_stop(self, market: Market, side: str, type_: str, qty: float, price: float | None,
                    tif: str, client_id: str | None, stop_price: float | None) -> SimOrder:
        if stop_price is None or stop_price <= 0:
            raise OrderError(-1102, "Mandatory parameter 'stopPrice' was not sent.")
        last = self._price(market.mid) if self._price is not None else None
        if last is not None and _crossed(side, stop_price, last, last):
            raise OrderError(-2010, "Stop price would trigger immediately.")
        limit = price if type_ == "STOP_LOSS_LIMIT" else None
        reference = limit if limit is not None else stop_price
        est = qty * reference * (1 + self.taker_fee) if side == "BUY" else qty
        self._lock(market.quote if side == "BUY" else market.base, est)
        order = SimOrder(self._next_order, client_id or f"sim-{self._next_order}", market, side,
                         type_, limit or 0.0, qty, tif if limit is not None else "GTC", self._now(),
                         locked=est, stop_price=stop_price)
        self._next_order += 1
        self.orders[order.order_id] = order
        self._emit(order, None)
        return order

    def pending_stops(self, mid: str | None = None) -> list[SimOrder]:
        return [o for o in self.open_orders(mid) if not o.working]

    def check_stops(self, mid: str, low: float, high: float) -> int:
        """Trigger the stops the traded price range ``[low, high]`` crossed; returns how many."""
        fired = 0
        for order in self.pending_stops(mid):
            if not _crossed(order.side, order.stop_price, low, high):
                continue
            fired += 1
            order.triggered = True
            order.updated = self._now()
            bids, asks = self._book(mid)
            levels = asks if order.side == "BUY" else bids
            limit = order.price if order.type == "STOP_LOSS_LIMIT" else None
            for fill_price, fill_qty in _walk(levels, order.qty, limit, order.side == "BUY")[0]:
                self._fill(order, fill_price, fill_qty, maker=False)
            if order.status != "FILLED" and limit is None:
                self._finish(order, "EXPIRED")
        return fired

    def cancel(self, mid: str, order_id: int | None, client_id: str | None) -> SimOrder:
        order = self.find(mid, order_id, client_id)
        if order.status not in ("NEW", "PARTIALLY_FILLED"):
            raise OrderError(-2011, "Unknown order sent.")
        self._finish(order, "CANCELED")
        return order

    def find(self, mid: str, order_id: int | None, client_id: str | None) -> SimOrder:
        for order in self.orders.values():
            if order.market.mid == mid and (
                (order_id is not None and order.order_id == order_id)
                or (order_id is None and client_id is not None and order.client_id == client_id)
            ):
                return order
        raise OrderError(-2013, "Order does not exist.")

    def open_orders(self, mid: str | None) -> list[SimOrder]:
        return [o for o in self.orders.values() if o.status in ("NEW", "PARTIALLY_FILLED")
                and (mid is None or o.market.mid == mid)]

    def on_book(self, mid: str) -> None:
        """Fill resting limit orders the book now crosses (maker, at the order's price)."""
        resting = [o for o in self.open_orders(mid) if o.working]
        if not resting:
            return
        bids, asks = self._book(mid)
        best_bid = bids[0][0] if bids else None
        best_ask = asks[0][0] if asks else None
        for order in resting:
            left = order.qty - order.executed
            if order.side == "BUY" and best_ask is not None and best_ask <= order.price:
                self._fill(order, order.price, left, maker=True)
            elif order.side == "SELL" and best_bid is not None and best_bid >= order.price:
                self._fill(order, order.price, left, maker=True)

    # -- internals --------------------------------------------------------------------

    def _fill(self, order: SimOrder, price: float, qty: float, maker: bool) -> None:
        m = order.market
        fee_rate = self.maker_fee if maker else self.taker_fee
        quote = price * qty
        if order.side == "BUY":
            spent = min(quote, order.locked)
            order.locked -= spent
            self.locked[m.quote] = self.locked.get(m.quote, 0.0) - spent
            if quote > spent:  # market buy walked deeper than estimated
                self.free[m.quote] = self.free.get(m.quote, 0.0) - (quote - spent)
            fee, fee_asset = qty * fee_rate, m.base
            self.free[m.base] = self.free.get(m.base, 0.0) + qty - fee
        else:
            order.locked -= qty
            self.locked[m.base] = self.locked.get(m.base, 0.0) - qty
            fee, fee_asset = quote * fee_rate, m.quote
            self.free[m.quote] = self.free.get(m.quote, 0.0) + quote - fee
        order.executed += qty
        order.quote_executed += quote
        order.updated = self._now()
        order.status = "FILLED" if order.executed >= order.qty - 1e-12 else "PARTIALLY_FILLED"
        trade = {
            "symbol": m.mid, "id": self._next_trade, "orderId": order.order_id,
            "orderListId": -1, "price": repr(price), "qty": repr(qty), "quoteQty": repr(quote),
            "commission": repr(fee), "commissionAsset": fee_asset, "time": order.updated,
            "isBuyer": order.side == "BUY", "isMaker": maker, "isBestMatch": True,
        }
        self._next_trade += 1
        self.trades.append(trade)
        order.fills.append({"price": repr(price), "qty": repr(qty), "commission": repr(fee),
                            "commissionAsset": fee_asset, "tradeId": trade["id"]})
        if order.status == "FILLED" and order.locked > 0:
            self._unlock(m.quote if order.side == "BUY" else m.base, order.locked)
            order.locked = 0.0
        self._emit(order, trade)

    def _finish(self, order: SimOrder, status: str) -> None:
        m = order.market
        if order.locked > 0:
            self._unlock(m.quote if order.side == "BUY" else m.base, order.locked)
            order.locked = 0.0
        order.status = status
        order.updated = self._now()
        self._emit(order, None)

    def _emit(self, order: SimOrder, trade: dict | None) -> None:
        for listener in self.listeners:
            listener(order, trade)


def _crossed(side: str, stop: float, low: float, high: float) -> bool:
    """Whether a traded range reaches a stop: a sell stop at or below it, a buy stop at or above."""
    return low <= stop if side == "SELL" else high >= stop


def _walk(
    levels: list[Level], qty: float, limit: float | None, buy: bool
) -> tuple[list[Level], float]:
    """Fills of ``qty`` against ``levels`` (best first) no worse than ``limit``; and their cost.

    A market order deeper than the book fills its remainder at the last level's price.
    """
    fills: list[Level] = []
    left, cost = qty, 0.0
    for price, avail in levels:
        if limit is not None and ((buy and price > limit) or (not buy and price < limit)):
            break
        take = min(left, avail)
        fills.append((price, take))
        cost += price * take
        left -= take
        if left <= 1e-12:
            break
    if left > 1e-12 and limit is None and levels:
        fills.append((levels[-1][0], left))
        cost += levels[-1][0] * left
    return fills, cost
