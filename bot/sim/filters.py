"""Binance spot symbol filters: the real values per symbol, and their enforcement (-1013).

Numbers arrive as text and are checked as Binance does: a parameter must match
``^([0-9]{1,20})(\\.[0-9]{1,20})?$`` (so ``nan``, ``inf``, ``1e308`` and negatives are
-1100), then price and quantity must sit on the tick/step grid within the filter's
bounds, and the notional must reach ``minNotional``. Decimal arithmetic on the text, so
a 9-decimal price is refused exactly, never rounded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from bot.sim.errors import OrderError

_NUMBER = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_LEGAL = "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'."


def fmt(x: float | Decimal) -> str:
    """A price or quantity as Binance writes it: fixed point, 8 decimals (``"0.00001000"``)."""
    text = f"{x:.8f}"
    return "0.00000000" if text == "-0.00000000" else text


def decimal_param(params: dict[str, str], name: str) -> Decimal | None:
    """A numeric order parameter as Binance validates it; ``None`` when absent."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not _NUMBER.match(raw):
        raise OrderError(-1100, f"Illegal characters found in parameter '{name}'; {_LEGAL}")
    return Decimal(raw)


@dataclass(frozen=True, slots=True)
class SymbolFilters:
    """The filters one symbol advertises in ``exchangeInfo`` and enforces on orders."""

    tick: Decimal
    step: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_max_qty: Decimal
    min_price: Decimal = Decimal("0.01")
    max_price: Decimal = Decimal("1000000")
    min_notional: Decimal = Decimal("5")
    max_notional: Decimal = Decimal("9000000")
    max_num_orders: int = 200

    def as_binance(self) -> list[dict]:
        return [
            {"filterType": "PRICE_FILTER", "minPrice": fmt(self.min_price),
             "maxPrice": fmt(self.max_price), "tickSize": fmt(self.tick)},
            {"filterType": "LOT_SIZE", "minQty": fmt(self.min_qty), "maxQty": fmt(self.max_qty),
             "stepSize": fmt(self.step)},
            {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000",
             "maxQty": fmt(self.market_max_qty), "stepSize": "0.00000000"},
            {"filterType": "NOTIONAL", "minNotional": fmt(self.min_notional),
             "applyMinToMarket": True, "maxNotional": fmt(self.max_notional),
             "applyMaxToMarket": False, "avgPriceMins": 5},
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": self.max_num_orders},
        ]

    def check_price(self, price: Decimal, name: str = "price") -> None:
        if price <= 0:
            raise OrderError(-1013, f"Invalid {name}.")
        if price < self.min_price:
            raise OrderError(-1013, "Filter failure: PRICE_FILTER")
        if price > self.max_price or (price - self.min_price) % self.tick != 0:
            raise OrderError(-1013, "Filter failure: PRICE_FILTER")

    def check_qty(self, qty: Decimal, market: bool) -> None:
        if qty <= 0:
            raise OrderError(-1013, "Invalid quantity.")
        if qty < self.min_qty or qty > self.max_qty or (qty - self.min_qty) % self.step != 0:
            raise OrderError(-1013, "Filter failure: LOT_SIZE")
        if market and qty > self.market_max_qty:
            raise OrderError(-1013, "Filter failure: MARKET_LOT_SIZE")

    def check_notional(self, notional: Decimal, market: bool) -> None:
        if notional < self.min_notional:
            raise OrderError(-1013, "Filter failure: NOTIONAL")
        if not market and notional > self.max_notional:
            raise OrderError(-1013, "Filter failure: NOTIONAL")

    def check_open_count(self, open_orders: int) -> None:
        if open_orders >= self.max_num_orders:
            raise OrderError(-1013, "Filter failure: MAX_NUM_ORDERS")


def _filters(tick: str, step: str, max_qty: str, market_max: str) -> SymbolFilters:
    return SymbolFilters(tick=Decimal(tick), step=Decimal(step), min_qty=Decimal(step),
                         max_qty=Decimal(max_qty), market_max_qty=Decimal(market_max),
                         min_price=Decimal(tick))


# What Binance spot lists for these symbols (MARKET_LOT_SIZE maxQty moves with liquidity;
# these are typical values).
BINANCE_FILTERS: dict[str, SymbolFilters] = {
    "BTCUSDT": _filters("0.01", "0.00001", "9000", "100"),
    "ETHUSDT": _filters("0.01", "0.0001", "9000", "2000"),
    "BNBUSDT": _filters("0.01", "0.001", "9000", "2000"),
    "ADAUSDT": _filters("0.0001", "0.1", "9000000", "5000000"),
}
DEFAULT_FILTERS = _filters("0.00000001", "0.00000001", "9000000", "9000000")


def filters_for(mid: str) -> SymbolFilters:
    return BINANCE_FILTERS.get(mid, DEFAULT_FILTERS)
