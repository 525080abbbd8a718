"""Orders of the loopback exchange: new-order parameters as Binance validates them, and the
order records with their Binance answers (``newOrderRespType`` ACK / RESULT / FULL)."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from bot.sim.errors import OrderError, mandatory, not_required
from bot.sim.filters import decimal_param, fmt

STOP_TYPES = ("STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
LIMIT_TYPES = ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT", "LIMIT_MAKER")
ORDER_TYPES = ("LIMIT", "LIMIT_MAKER", "MARKET", *STOP_TYPES)
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
RESP_TYPES = ("ACK", "RESULT", "FULL")
OPEN = ("NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True, slots=True)
class Market:
    symbol: str  # unified, BTC/USDT
    mid: str  # BTCUSDT
    base: str
    quote: str


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A validated ``POST /api/v3/order`` (or websocket ``order.place``)."""

    mid: str
    side: str  # BUY | SELL
    type: str
    qty: Decimal | None  # None: a MARKET order by quoteOrderQty
    quote_qty: Decimal | None
    price: Decimal | None
    stop_price: Decimal | None
    time_in_force: str
    client_id: str | None
    resp_type: str


def parse_order(params: dict[str, str]) -> OrderRequest:
    """Binance's mandatory/forbidden parameter rules per order type (-1102, -1106, -1116...)."""
    for name in ("symbol", "side", "type"):
        if not params.get(name):
            raise mandatory(name)
    side, type_ = params["side"].upper(), params["type"].upper()
    if side not in ("BUY", "SELL"):
        raise OrderError(-1117, "Invalid side.")
    if type_ not in ORDER_TYPES:
        raise OrderError(-1116, "Invalid orderType.")
    qty, quote_qty = decimal_param(params, "quantity"), decimal_param(params, "quoteOrderQty")
    price, stop = decimal_param(params, "price"), decimal_param(params, "stopPrice")
    tif = params.get("timeInForce", "").upper()
    if type_ == "MARKET":
        if qty is None and quote_qty is None:
            raise OrderError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both "
                                    "were empty/null!")
        if qty is not None and quote_qty is not None:
            raise OrderError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
    elif qty is None:
        raise mandatory("quantity")
    elif quote_qty is not None:
        raise not_required("quoteOrderQty")
    if type_ in LIMIT_TYPES and price is None:
        raise mandatory("price")
    if type_ not in LIMIT_TYPES and price is not None:
        raise not_required("price")
    if type_ in STOP_TYPES and stop is None:
        raise mandatory("stopPrice")
    if type_ not in STOP_TYPES and stop is not None:
        raise not_required("stopPrice")
    if type_ in ("LIMIT", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
        if not tif:
            raise mandatory("timeInForce")
        if tif not in TIME_IN_FORCE:
            raise OrderError(-1115, "Invalid timeInForce.")
    elif tif:
        raise not_required("timeInForce")
    resp = params.get("newOrderRespType", "").upper() or (
        "FULL" if type_ in ("MARKET", "LIMIT") else "ACK")
    if resp not in RESP_TYPES:
        raise OrderError(-1177, "Invalid newOrderRespType.")
    client_id = params.get("newClientOrderId") or None
    if client_id is not None and len(client_id) > 36:
        raise OrderError(-1100, "Illegal characters found in parameter 'newClientOrderId'; "
                                "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
    return OrderRequest(params["symbol"].upper(), side, type_, qty, quote_qty, price, stop,
                        tif or "GTC", client_id, resp)


@dataclass(slots=True)
class SimOrder:
    order_id: int
    client_id: str
    market: Market
    side: str  # BUY | SELL
    type: str
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
    quote_qty: float = 0.0  # origQuoteOrderQty of a MARKET order by quote amount

    @property
    def is_stop(self) -> bool:
        return self.type in STOP_TYPES

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def working(self) -> bool:
        """Matching: a plain order, or a stop that has triggered."""
        return not self.is_stop or self.triggered

    def ack(self) -> dict:
        return {"symbol": self.market.mid, "orderId": self.order_id, "orderListId": -1,
                "clientOrderId": self.client_id, "transactTime": self.created}

    def result(self) -> dict:
        out = self.ack() | self._state()
        out["workingTime"] = self.created if self.working else -1
        if self.is_stop:
            out["stopPrice"] = fmt(self.stop_price)
        return out

    def full(self) -> dict:
        return self.result() | {"fills": list(self.fills)}

    def response(self, resp_type: str) -> dict:
        return {"ACK": self.ack, "RESULT": self.result, "FULL": self.full}[resp_type]()

    def _state(self) -> dict:
        return {
            "price": fmt(self.price), "origQty": fmt(self.qty), "executedQty": fmt(self.executed),
            "origQuoteOrderQty": fmt(self.quote_qty),
            "cummulativeQuoteQty": fmt(self.quote_executed), "status": self.status,
            "timeInForce": self.time_in_force, "type": self.type, "side": self.side,
            "selfTradePreventionMode": "NONE",
        }

    def as_binance(self) -> dict:
        """``GET /api/v3/order`` (and openOrders/allOrders) form."""
        return {
            "symbol": self.market.mid, "orderId": self.order_id, "orderListId": -1,
            "clientOrderId": self.client_id, **self._state(), "stopPrice": fmt(self.stop_price),
            "icebergQty": "0.00000000", "time": self.created,
            "updateTime": self.updated or self.created, "isWorking": self.working,
            "workingTime": self.created if self.working else -1,
        }

    def canceled(self, cancel_id: str, now_ms: int) -> dict:
        """``DELETE /api/v3/order`` form: ``clientOrderId`` is the cancel's own id."""
        out = {"symbol": self.market.mid, "origClientOrderId": self.client_id,
               "orderId": self.order_id, "orderListId": -1, "clientOrderId": cancel_id,
               "transactTime": now_ms, **self._state()}
        if self.is_stop:
            out["stopPrice"] = fmt(self.stop_price)
        return out
