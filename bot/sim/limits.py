"""Binance's request-weight and order-count limits (real time, fixed windows, per server).

Every REST answer carries ``X-MBX-USED-WEIGHT-1M`` and, for orders,
``X-MBX-ORDER-COUNT-10S`` / ``X-MBX-ORDER-COUNT-1D``. Over a limit the answer is 429
(-1003 weight, -1015 orders) with ``Retry-After``; a client that keeps sending while told
to back off (``ban_after`` more requests) is banned: 418 until ``ban_s`` have passed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.sim.errors import OrderError
from bot.sim.settings import RateLimitSettings

def rate_limits_info(limits: RateLimitSettings) -> list[dict]:
    """``exchangeInfo.rateLimits`` (and the websocket API's ``rateLimits``) entries."""
    out = []
    if limits.request_weight_per_minute:
        out.append({"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                    "limit": limits.request_weight_per_minute})
    if limits.orders_per_10s:
        out.append({"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                    "limit": limits.orders_per_10s})
    if limits.orders_per_day:
        out.append({"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
                    "limit": limits.orders_per_day})
    return out


@dataclass(slots=True)
class _Window:
    seconds: float
    start: float = 0.0
    used: int = 0

    def roll(self, now: float) -> None:
        start = now - now % self.seconds
        if start != self.start:
            self.start, self.used = start, 0

    def retry_after(self, now: float) -> int:
        return max(1, int(self.start + self.seconds - now + 0.999))


class RateLimiter:
    def __init__(self, limits: RateLimitSettings, monotonic: Callable[[], float]) -> None:
        self.limits = limits
        self._mono = monotonic
        self.weight = _Window(60.0)
        self.orders_10s = _Window(10.0)
        self.orders_day = _Window(86_400.0)
        self._backoff_until = 0.0  # told to back off (429) until then
        self._ignored = 0  # requests sent although told to back off
        self.banned_until = 0.0

    def headers(self, order: bool) -> dict[str, str]:
        out = {"X-MBX-USED-WEIGHT-1M": str(self.weight.used)}
        if order:
            out["X-MBX-ORDER-COUNT-10S"] = str(self.orders_10s.used)
            out["X-MBX-ORDER-COUNT-1D"] = str(self.orders_day.used)
        return out

    def charge(self, weight: int, order: bool) -> None:
        """Count one request; raises the 429/418 answer when it is over a limit."""
        now = self._mono()
        for window in (self.weight, self.orders_10s, self.orders_day):
            window.roll(now)
        if now < self._backoff_until and now >= self.banned_until:
            self._ignored += 1
            if self._ignored > self.limits.ban_after:
                self.banned_until = now + self.limits.ban_s
                self._ignored = 0
        if now < self.banned_until:
            until = int((self.banned_until - now) * 1000)
            raise OrderError(-1003, f"Way too many requests; IP(127.0.0.1) banned for {until} ms. "
                                    "Please use the websocket for live updates to avoid bans.", 418,
                             retry_after=max(1, int(self.banned_until - now + 0.999)))
        self.weight.used += weight
        cap = self.limits.request_weight_per_minute
        if cap and self.weight.used > cap:
            self._too_many(now, self.weight, -1003,
                           f"Too many requests; current limit of IP(127.0.0.1) is {cap} requests "
                           "per minute. Please use WebSocket Streams for live updates to avoid "
                           "polling the API.")
        if order:
            self.orders_10s.used += 1
            self.orders_day.used += 1
            for window, cap, name in ((self.orders_10s, self.limits.orders_per_10s, "TEN_SECONDS"),
                                      (self.orders_day, self.limits.orders_per_day, "DAY")):
                if cap and window.used > cap:
                    self._too_many(now, window, -1015,
                                   f"Too many new orders; current limit is {cap} orders per {name}.")

    def _too_many(self, now: float, window: _Window, code: int, msg: str) -> None:
        retry = window.retry_after(now)
        self._backoff_until = max(self._backoff_until, now + retry)
        raise OrderError(code, msg, 429, retry_after=retry)


def depth_weight(limit: int) -> int:
    return 5 if limit <= 100 else 25 if limit <= 500 else 50 if limit <= 1000 else 250


def weight_of(method: str, path: str, query: dict[str, str]) -> int:
    name = path.removeprefix("/api/v3/")
    many = "symbol" not in query and "symbols" not in query
    if name == "depth":
        try:
            return depth_weight(int(query.get("limit", "100")))
        except ValueError:
            return 5
    if name == "ticker/24hr":
        return 80 if many else 2
    if name in ("ticker/price", "ticker/bookTicker"):
        return 4 if many else 2
    if name == "ticker":
        return 4 * max(1, query.get("symbols", "").count(",") + 1)
    if name == "openOrders" and method == "GET":
        return 80 if many else 6
    if name == "order":
        return 4 if method == "GET" else 1
    return _WEIGHTS.get(name, 1)


_WEIGHTS = {
    "exchangeInfo": 20, "klines": 2, "uiKlines": 2, "trades": 25, "historicalTrades": 25,
    "aggTrades": 4, "avgPrice": 2, "account": 20, "allOrders": 20, "myTrades": 20,
    "account/commission": 20, "userDataStream": 2, "order/test": 1, "openOrders": 1,
}
