"""Accounts, orders and matching of the loopback exchange (Binance spot semantics).

Orders match against the exchange's current book without consuming it (the book is the
market; our orders are assumed too small to move it). Marketable orders fill as taker by
walking the levels; resting limit orders fill as maker when the book crosses their price.
``FOK`` fills completely or expires untouched; ``IOC`` and ``MARKET`` expire their rest;
``LIMIT_MAKER`` that would take is refused (-2010). Commission is charged in the asset
received, like Binance, rounded to 8 decimals.

Trigger orders (``STOP_LOSS(_LIMIT)``, ``TAKE_PROFIT(_LIMIT)``) rest untriggered
(``isWorking`` false, their amount locked) until the traded price reaches ``stopPrice``
(a stop-loss sell at or below, a take-profit sell at or above; buys mirrored); then the
plain variant fills like a market order and the ``_LIMIT`` one like a limit order at its
price. One that would trigger at once is refused, like Binance (-2010).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_DOWN, Decimal

from bot.sim.errors import OrderError
from bot.sim.filters import filters_for, fmt
from bot.sim.market import Level
from bot.sim.orders import Market, OrderRequest, SimOrder

Book = Callable[[str], tuple[list[Level], list[Level]]]
Listener = Callable[[SimOrder, dict | None], None]
_EPS = 1e-12


def insufficient() -> OrderError:
    return OrderError(-2010, "Account has insufficient balance for requested action.")


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
        if not self.free.get(asset, 0.0) + _EPS >= amount:  # also refuses nan
            raise insufficient()
        self.free[asset] = self.free.get(asset, 0.0) - amount
        self.locked[asset] = self.locked.get(asset, 0.0) + amount

    def _unlock(self, asset: str, amount: float) -> None:
        self.locked[asset] = self.locked.get(asset, 0.0) - amount
        self.free[asset] = self.free.get(asset, 0.0) + amount

    def balances(self) -> list[dict]:
        assets = sorted(set(self.free) | set(self.locked))
        return [{"asset": a, "free": fmt(max(0.0, self.free.get(a, 0.0))),
                 "locked": fmt(max(0.0, self.locked.get(a, 0.0)))} for a in assets]

    # -- orders -----------------------------------------------------------------------

    def validate(self, req: OrderRequest) -> tuple[Market, list[Level]]:
        """Everything Binance checks before accepting ``req`` (also serves ``order/test``)."""
        market = self.markets.get(req.mid)
        if market is None:
            raise OrderError(-1121, "Invalid symbol.")
        filters = filters_for(req.mid)
        is_market = req.type in ("MARKET", "STOP_LOSS", "TAKE_PROFIT")
        if req.price is not None:
            filters.check_price(req.price)
        if req.stop_price is not None:
            filters.check_price(req.stop_price, "stopPrice")
        bids, asks = self._book(req.mid)
        levels = asks if req.side == "BUY" else bids
        if not levels:
            raise OrderError(-2010, "No liquidity.")
        qty = req.qty
        if qty is None:  # MARKET by quoteOrderQty
            assert req.quote_qty is not None
            qty = _qty_for_quote(levels, float(req.quote_qty), filters.step)
            if qty <= 0:
                raise OrderError(-1013, "Filter failure: NOTIONAL")
        filters.check_qty(qty, is_market)
        last = self._price(req.mid) if self._price is not None else None
        reference = req.price if req.price is not None else Decimal(repr(last or levels[0][0]))
        filters.check_notional(qty * reference, is_market)
        filters.check_open_count(len(self.open_orders(req.mid)))
        if req.client_id and any(o.client_id == req.client_id for o in self.open_orders(None)):
            raise OrderError(-2010, "Duplicate order sent.")
        if req.type == "LIMIT_MAKER" and _walk(levels, float(qty), float(req.price), req.side == "BUY")[0]:
            raise OrderError(-2010, "Order would immediately match and take.")
        if req.stop_price is not None and self._price is not None:
            last = self._price(req.mid)
            if last is not None and _reached(req.type, req.side, float(req.stop_price), last, last):
                raise OrderError(-2010, "Stop price would trigger immediately.")
        return market, levels

    def place(self, req: OrderRequest) -> SimOrder:
        market, levels = self.validate(req)
        buy = req.side == "BUY"
        qty = req.qty if req.qty is not None else _qty_for_quote(
            levels, float(req.quote_qty or 0), filters_for(req.mid).step)
        fqty, price = float(qty), float(req.price) if req.price is not None else 0.0
        stop = float(req.stop_price) if req.stop_price is not None else 0.0
        if not buy:
            est = fqty
        elif price:  # a limit locks exactly its cost, like Binance
            est = fqty * price
        else:  # market-like: the cost estimate plus room for walking deeper
            cost = _walk(levels, fqty, None, True)[1] if req.type == "MARKET" else fqty * stop
            est = cost * (1 + self.taker_fee)
        self._lock(market.quote if buy else market.base, est)
        order = SimOrder(self._next_order, req.client_id or f"sim-{self._next_order}", market,
                         req.side, req.type, price, fqty, req.time_in_force, self._now(),
                         locked=est, stop_price=stop,
                         quote_qty=float(req.quote_qty) if req.quote_qty is not None else 0.0)
        self._next_order += 1
        self.orders[order.order_id] = order
        self._emit(order, None)
        if not order.is_stop:
            self._execute(order, levels)
        return order

    def _execute(self, order: SimOrder, levels: list[Level]) -> None:
        """Fill a working order as taker against ``levels``; expire what its type does not rest."""
        limit = order.price if order.type not in ("MARKET", "STOP_LOSS", "TAKE_PROFIT") else None
        fills, _ = _walk(levels, order.qty - order.executed, limit, order.side == "BUY")
        filled = sum(q for _, q in fills)
        if order.time_in_force == "FOK" and filled < order.qty - order.executed - _EPS:
            fills = []  # all or nothing
        for fill_price, fill_qty in fills:
            self._fill(order, fill_price, fill_qty, maker=False)
        if order.status != "FILLED" and (limit is None or order.time_in_force in ("IOC", "FOK")):
            self._finish(order, "EXPIRED")

    def pending_stops(self, mid: str | None = None) -> list[SimOrder]:
        return [o for o in self.open_orders(mid) if not o.working]

    def check_stops(self, mid: str, low: float, high: float) -> int:
        """Trigger the stops the traded price range ``[low, high]`` reached; returns how many."""
        fired = 0
        for order in self.pending_stops(mid):
            if not _reached(order.type, order.side, order.stop_price, low, high):
                continue
            fired += 1
            order.triggered = True
            order.updated = self._now()
            bids, asks = self._book(mid)
            self._execute(order, asks if order.side == "BUY" else bids)
        return fired

    def cancel(self, mid: str, order_id: int | None, client_id: str | None) -> SimOrder:
        if mid not in self.markets:
            raise OrderError(-1121, "Invalid symbol.")
        try:
            order = self.find(mid, order_id, client_id)
        except OrderError:
            raise OrderError(-2011, "Unknown order sent.") from None
        if not order.is_open:
            raise OrderError(-2011, "Unknown order sent.")
        self._finish(order, "CANCELED")
        return order

    def find(self, mid: str, order_id: int | None, client_id: str | None) -> SimOrder:
        if order_id is None and client_id is None:
            raise OrderError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but "
                                    "both were empty/null!")
        if mid not in self.markets:
            raise OrderError(-1121, "Invalid symbol.")
        found = None
        for order in self.orders.values():
            if order.market.mid == mid and (
                (order_id is not None and order.order_id == order_id)
                or (order_id is None and order.client_id == client_id)
            ):
                found = order  # the latest of an id reused after the first closed
        if found is None:
            raise OrderError(-2013, "Order does not exist.")
        return found

    def open_orders(self, mid: str | None) -> list[SimOrder]:
        return [o for o in self.orders.values() if o.is_open
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
            fee, fee_asset = round(qty * fee_rate, 8), m.base
            self.free[m.base] = self.free.get(m.base, 0.0) + qty - fee
        else:
            order.locked -= qty
            self.locked[m.base] = self.locked.get(m.base, 0.0) - qty
            fee, fee_asset = round(quote * fee_rate, 8), m.quote
            self.free[m.quote] = self.free.get(m.quote, 0.0) + quote - fee
        order.executed += qty
        order.quote_executed += quote
        order.updated = self._now()
        order.status = "FILLED" if order.executed >= order.qty - _EPS else "PARTIALLY_FILLED"
        trade = {
            "symbol": m.mid, "id": self._next_trade, "orderId": order.order_id,
            "orderListId": -1, "price": fmt(price), "qty": fmt(qty), "quoteQty": fmt(quote),
            "commission": fmt(fee), "commissionAsset": fee_asset, "time": order.updated,
            "isBuyer": order.side == "BUY", "isMaker": maker, "isBestMatch": True,
        }
        self._next_trade += 1
        self.trades.append(trade)
        order.fills.append({"price": fmt(price), "qty": fmt(qty), "commission": fmt(fee),
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


def _reached(type_: str, side: str, stop: float, low: float, high: float) -> bool:
    """Whether a traded range reaches a trigger: a stop-loss sell (take-profit buy) at or below
    it, a stop-loss buy (take-profit sell) at or above."""
    falling = (side == "SELL") == type_.startswith("STOP_LOSS")
    return low <= stop if falling else high >= stop


def _qty_for_quote(levels: list[Level], quote: float, step: Decimal) -> Decimal:
    """The base quantity ``quote`` buys (or must sell for) walking ``levels``, floored to ``step``."""
    left, qty = quote, 0.0
    for price, avail in levels:
        take = min(avail, left / price)
        qty += take
        left -= take * price
        if left <= _EPS:
            break
    if left > _EPS and levels:  # deeper than the book: the rest at the last level
        qty += left / levels[-1][0]
    return Decimal(repr(qty)).quantize(step, rounding=ROUND_DOWN) if qty > 0 else Decimal(0)


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
        if left <= _EPS:
            break
    if left > _EPS and limit is None and levels:
        fills.append((levels[-1][0], left))
        cost += levels[-1][0] * left
    return fills, cost
