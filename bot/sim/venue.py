"""What the loopback exchange's front ends (REST, websocket API, user and market streams) use of
the venue. ``SimExchange`` (:mod:`bot.sim.server`) is the one venue; the parts it builds take this
Protocol, so none of them imports the server."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from bot.sim.books import Books
from bot.sim.faults import HttpFaults
from bot.sim.limits import RateLimiter
from bot.sim.marketdata import MarketData
from bot.sim.matching import Matcher
from bot.sim.orders import Market
from bot.sim.settings import FaultSettings, SimSettings
from bot.sim.ws import Hub


class UserStreamRegistry(Protocol):
    """Who receives the account's events (``bot.sim.private_ws.UserStreams``)."""

    listen_key: str
    subscribers: dict[web.WebSocketResponse, int]  # websocket-API subscription -> its id

    def subscribe(self, ws: web.WebSocketResponse) -> int: ...


class Venue(Protocol):
    settings: SimSettings
    faults: FaultSettings
    http_faults: HttpFaults
    rest_requests: int  # REST requests served (the tests count them)
    markets: dict[str, Market]
    data: MarketData
    books: Books
    hub: Hub
    matcher: Matcher
    rate_limiter: RateLimiter
    user_streams: UserStreamRegistry

    def now_ms(self) -> int: ...

    def price(self, mid: str) -> float | None: ...

    def ticker(self, mid: str, window_ms: int = 86_400_000) -> dict: ...

    def exchange_info(self) -> dict: ...

    def account(self) -> dict: ...

    def commission_rates(self) -> dict: ...

    def on_book(self, mid: str) -> None: ...

    def check_stops(self, mid: str | None = None) -> int: ...
