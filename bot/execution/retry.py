"""Classifying ccxt errors on the order path, and the backoff between attempts.

    rejected   -- the exchange refused the order (InsufficientFunds, InvalidOrder, ...):
                  a stored denial, never retried.
    throttled  -- 429 / DDoSProtection: not processed; back off (honouring the
                  exchange's pacing) before anything else.
    ambiguous  -- timeout, 5xx, network: the order may or may not exist. The order is
                  looked up by its client order id before anything is retried.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum

import ccxt.async_support as ccxt

# ccxt's own REST rate limiter, as a sliding 60 s window of request weight (Binance's
# REQUEST_WEIGHT budget). ccxt's default leaky bucket does not credit idle time: every
# request after a pause still waited one full refill (~10 ms on Binance), which was most
# of the candle-close -> order latency. The window keeps the exchange's limit and adds no
# delay below it.
CCXT_RATE_LIMIT: dict[str, object] = {
    "enableRateLimit": True,
    "rateLimiterAlgorithm": "rollingWindow",
    "rollingWindowSize": 60_000,
}


class Outcome(str, Enum):
    REJECTED = "rejected"
    THROTTLED = "throttled"
    AMBIGUOUS = "ambiguous"


def classify(exc: BaseException) -> Outcome:
    if isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):  # HTTP 429 / 418
        return Outcome.THROTTLED
    if isinstance(exc, ccxt.NetworkError):  # RequestTimeout, ExchangeNotAvailable, ...
        return Outcome.AMBIGUOUS
    if isinstance(exc, ccxt.BaseError) and not isinstance(exc, ccxt.ExchangeError):
        return Outcome.AMBIGUOUS
    return Outcome.REJECTED  # InsufficientFunds, InvalidOrder, BadRequest, PermissionDenied...


def denial_check(exc: BaseException) -> str:
    """The check name a rejected order is stored under, e.g. ``exchange_insufficient_funds``."""
    name = type(exc).__name__
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
    return f"exchange_{snake}"


@dataclass(slots=True)
class RetryPolicy:
    """Exponential backoff with jitter; ``sleep`` is injected (tests need no real waiting)."""

    initial_s: float = 0.25
    max_s: float = 10.0
    factor: float = 2.0
    max_attempts: int = 6
    throttle_floor_s: float = 1.0  # at least this long after a 429 (Binance Retry-After scale)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)
    delays: list[float] = field(default_factory=list)  # what was slept, for logs and tests

    def delay(self, attempt: int, outcome: Outcome) -> float:
        base = min(self.max_s, self.initial_s * self.factor**attempt)
        if outcome is Outcome.THROTTLED:
            base = max(base, self.throttle_floor_s)
        return base * (0.75 + 0.5 * self.rng.random())

    async def wait(self, attempt: int, outcome: Outcome) -> None:
        d = self.delay(attempt, outcome)
        self.delays.append(d)
        await self.sleep(d)
