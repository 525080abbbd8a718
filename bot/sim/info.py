"""Static-ish answers of the loopback exchange: ``exchangeInfo``, account and commission."""

from __future__ import annotations

from bot.sim.filters import filters_for
from bot.sim.limits import rate_limits_info
from bot.sim.orders import ORDER_TYPES, Market
from bot.sim.settings import SimSettings


def exchange_info(markets: dict[str, Market], settings: SimSettings, now_ms: int) -> dict:
    symbols = []
    for mid, m in sorted(markets.items()):
        symbols.append({
            "symbol": mid, "status": "TRADING", "baseAsset": m.base, "baseAssetPrecision": 8,
            "quoteAsset": m.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
            "orderTypes": sorted(ORDER_TYPES), "icebergAllowed": False, "ocoAllowed": False,
            "otoAllowed": False, "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": False,
            "cancelReplaceAllowed": False, "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False, "filters": filters_for(mid).as_binance(),
            "permissions": [], "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "NONE", "allowedSelfTradePreventionModes": ["NONE"],
        })
    return {"timezone": "UTC", "serverTime": now_ms,
            "rateLimits": rate_limits_info(settings.rate_limits), "exchangeFilters": [],
            "symbols": symbols}


def commission_rates(settings: SimSettings) -> dict:
    rate = lambda x: f"{x:.8f}"  # noqa: E731
    zero = {"maker": "0.00000000", "taker": "0.00000000", "buyer": "0.00000000",
            "seller": "0.00000000"}
    return {
        "standardCommission": {"maker": rate(settings.maker_fee), "taker": rate(settings.taker_fee),
                               "buyer": "0.00000000", "seller": "0.00000000"},
        "taxCommission": zero, "specialCommission": zero,
        "discount": {"enabledForAccount": False, "enabledForSymbol": False,
                     "discountAsset": "BNB", "discount": "0.00000000"},
    }


def account(settings: SimSettings, balances: list[dict], now_ms: int) -> dict:
    return {
        "makerCommission": round(settings.maker_fee * 10_000),
        "takerCommission": round(settings.taker_fee * 10_000), "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {"maker": f"{settings.maker_fee:.8f}",
                            "taker": f"{settings.taker_fee:.8f}",
                            "buyer": "0.00000000", "seller": "0.00000000"},
        "canTrade": True, "canWithdraw": False, "canDeposit": False, "brokered": False,
        "requireSelfTradePrevention": False, "preventSor": False, "updateTime": now_ms,
        "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"], "uid": 1,
    }
