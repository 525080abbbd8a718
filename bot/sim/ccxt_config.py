"""Pointing the real ccxt (pro) ``binance`` client at the loopback exchange.

Only URLs and a few options change; every request and message still goes through
ccxt's own binance implementation (signing, parsing, order-book sync).
"""

from __future__ import annotations

from typing import Any

REST_KEYS_V3 = ("public", "private")
REST_SAPI = {"sapi": "/sapi/v1", "sapiV2": "/sapi/v2", "sapiV3": "/sapi/v3", "sapiV4": "/sapi/v4"}


def ccxt_urls(base_http: str, base_ws: str) -> dict[str, Any]:
    """The ``urls['api']`` entries for a Binance-compatible server at these bases.

    ``base_http`` like ``http://127.0.0.1:8765``; ``base_ws`` like ``ws://127.0.0.1:8765``.
    """
    http, ws = base_http.rstrip("/"), base_ws.rstrip("/")
    api: dict[str, Any] = {key: f"{http}/api/v3" for key in REST_KEYS_V3}
    api["v1"] = f"{http}/api/v1"
    api.update({key: f"{http}{path}" for key, path in REST_SAPI.items()})
    api["ws"] = {
        "spot": f"{ws}/ws",
        "margin": f"{ws}/ws",
        "ws-api": {"spot": f"{ws}/ws-api/v3"},
    }
    return api


CCXT_OPTIONS: dict[str, Any] = {
    "defaultType": "spot",
    "fetchMarkets": {"types": ["spot"]},  # the loopback exchange has no futures/options
    "fetchCurrencies": False,  # would need the signed sapi capital endpoint
    "fetchMargins": False,
    "warnOnFetchOpenOrdersWithoutSymbol": False,
}


def configure_ccxt(exchange: Any, base_http: str, base_ws: str | None = None) -> Any:
    """Point an existing ccxt / ccxt.pro binance instance at ``base_http``/``base_ws``.

    Call before ``load_markets``. ``base_ws`` defaults to ``base_http`` with ``ws://``.
    """
    if base_ws is None:
        base_ws = "ws" + base_http[len("http"):] if base_http.startswith("http") else base_http
    api = dict(exchange.urls.get("api", {}))
    api.update(ccxt_urls(base_http, base_ws))
    exchange.urls["api"] = api
    for key, value in CCXT_OPTIONS.items():
        exchange.options[key] = value
    return exchange


def make_ccxt_binance(
    base_http: str, base_ws: str | None = None, api_key: str = "", secret: str = "",
    pro: bool = True, **config: Any,
) -> Any:
    """A ccxt(.pro) ``binance`` client configured for a loopback exchange."""
    if pro:
        import ccxt.pro as ccxt_mod
    else:
        import ccxt.async_support as ccxt_mod  # type: ignore[no-redef]
    from bot.execution.retry import CCXT_RATE_LIMIT  # the bot's own rate limiting, as in production

    params: dict[str, Any] = {**CCXT_RATE_LIMIT, **config}
    if api_key:
        params |= {"apiKey": api_key, "secret": secret}
    exchange = ccxt_mod.binance(params)
    return configure_ccxt(exchange, base_http, base_ws)
