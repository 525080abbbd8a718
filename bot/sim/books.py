"""The order books the loopback exchange serves, matches on and streams.

Three modes (``SimSettings.matching_book``):

* ``recentred`` (default): the recorded book's shape (levels and sizes, as the recording
  replays, looped) re-priced around the replayed candle price -- each level scaled by
  ``candle price / recorded mid`` and put on the symbol's tick grid. One price and one
  clock for every endpoint and stream.
* ``synthetic``: a ladder around the candle price (``synthetic_*`` settings).
* ``recorded``: the raw recording, verbatim (its own 2024 prices, ids and event times).

Symbols without a recording get the synthetic ladder in the first two modes. Outside the
raw mode the exchange keeps its own published book with its own update ids: every
refresh (each access, and every 100 ms) diffs the target against what was published,
and the diffs go out on ``@depth@100ms`` (every 100 ms) and ``@depth`` (every 1000 ms),
so a REST snapshot plus the diff stream rebuilds exactly the book orders match on.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.sim.filters import filters_for, fmt
from bot.sim.market import Level, SimBook, synthetic_levels
from bot.sim.streams import RecordingPlayer

RECENTRED_DEPTH = 200  # levels per side of the re-centred book


@dataclass(slots=True)
class PendingDiff:
    """Book changes not yet pushed on one diff stream (merged: the latest size per price)."""

    first: int | None = None
    last: int = 0
    bids: dict[str, str] = field(default_factory=dict)
    asks: dict[str, str] = field(default_factory=dict)

    def add(self, first: int, last: int, bids: list[list[str]], asks: list[list[str]]) -> None:
        if self.first is None:
            self.first = first
        self.last = last
        self.bids.update(dict(bids))  # type: ignore[arg-type]
        self.asks.update(dict(asks))  # type: ignore[arg-type]

    def take(self, mid: str, event_ms: int) -> dict | None:
        if self.first is None:
            return None
        out = {"e": "depthUpdate", "E": event_ms, "s": mid, "U": self.first, "u": self.last,
               "b": [[p, q] for p, q in self.bids.items()],
               "a": [[p, q] for p, q in self.asks.items()]}
        self.first, self.bids, self.asks = None, {}, {}
        return out


class PublishedBook:
    """The exchange's own book of one market: a target function, diffed on every refresh."""

    def __init__(self, mid: str, target: Callable[[], tuple[list[Level], list[Level]]]) -> None:
        self.mid = mid
        self.target = target
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.update_id = 0
        self.pending = {"100ms": PendingDiff(), "1000ms": PendingDiff()}

    def refresh(self) -> bool:
        """Bring the book to the target now; returns whether anything changed."""
        bids, asks = self.target()
        changes = [_diff(self.bids, dict(bids)), _diff(self.asks, dict(asks))]
        count = len(changes[0]) + len(changes[1])
        if not count:
            return False
        first = self.update_id + 1
        self.update_id += count
        for pending in self.pending.values():
            pending.add(first, self.update_id, *changes)
        return True

    def top(self, limit: int) -> tuple[list[Level], list[Level]]:
        return heapq.nlargest(limit, self.bids.items()), heapq.nsmallest(limit, self.asks.items())


def _diff(have: dict[float, float], want: dict[float, float]) -> list[list[str]]:
    """Change ``have`` into ``want`` in place; the changes as Binance ``[price, qty]`` text."""
    out = [[fmt(p), "0.00000000"] for p in have if p not in want]
    out += [[fmt(p), fmt(q)] for p, q in want.items() if have.get(p) != q]
    have.clear()
    have.update(want)
    return out


def recentre(source: SimBook, price: float, tick: float) -> tuple[list[Level], list[Level]]:
    """``source``'s top levels scaled so its mid sits at ``price``, on the ``tick`` grid."""
    (bid, _), (ask, _) = source.best()  # type: ignore[misc]
    k = price / ((bid + ask) / 2)
    src_bids, src_asks = source.top(RECENTRED_DEPTH)
    bids: dict[float, float] = {}
    for p, q in src_bids:
        key = round(math.floor(p * k / tick + 1e-9) * tick, 8)
        bids[key] = round(bids.get(key, 0.0) + q, 8)
    floor_ask = max(bids) + tick if bids else 0.0
    asks: dict[float, float] = {}
    for p, q in src_asks:
        key = round(max(math.ceil(p * k / tick - 1e-9) * tick, floor_ask), 8)
        asks[key] = round(asks.get(key, 0.0) + q, 8)
    return sorted(bids.items(), reverse=True), sorted(asks.items())


class Books:
    """Every market's book: what REST ``depth`` answers, what orders match on."""

    def __init__(self, mode: str, players: dict[str, RecordingPlayer],
                 price: Callable[[str], float | None], ladder: Callable[[float], tuple]) -> None:
        if mode not in ("recentred", "synthetic", "recorded"):
            raise ValueError(f"matching_book must be recentred, synthetic or recorded, not {mode!r}")
        self.mode = mode
        self.players = players
        self._price = price
        self._ladder = ladder
        self.published: dict[str, PublishedBook] = {}

    def raw(self, mid: str) -> bool:
        """Whether ``mid`` is served straight from its recording."""
        return self.mode == "recorded" and mid in self.players

    def book(self, mid: str) -> PublishedBook:
        if mid not in self.published:
            self.published[mid] = PublishedBook(mid, lambda: self._target(mid))
        return self.published[mid]

    def _target(self, mid: str) -> tuple[list[Level], list[Level]]:
        price = self._price(mid)
        player = self.players.get(mid)
        tick = float(filters_for(mid).tick)
        if self.mode == "recentred" and player is not None:
            bid, ask = player.book.best()
            if bid is not None and ask is not None:
                return recentre(player.book, price if price is not None else (bid[0] + ask[0]) / 2,
                                tick)
        if price is None:
            return [], []
        bids, asks = self._ladder(price)
        return ([(round(math.floor(p / tick) * tick, 8), q) for p, q in bids],
                [(round(math.ceil(p / tick) * tick, 8), q) for p, q in asks])

    def levels(self, mid: str, limit: int) -> tuple[list[Level], list[Level]]:
        if self.raw(mid):
            return self.players[mid].book.top(limit)
        book = self.book(mid)
        book.refresh()
        return book.top(limit)

    def snapshot(self, mid: str, limit: int) -> tuple[int, list[Level], list[Level]]:
        bids, asks = self.levels(mid, limit)
        book_id = self.players[mid].book.last_update_id if self.raw(mid) else self.book(mid).update_id
        return book_id, bids, asks

    def book_ticker(self, mid: str) -> dict:
        bids, asks = self.levels(mid, 1)
        bid, ask = (bids[0] if bids else (0.0, 0.0)), (asks[0] if asks else (0.0, 0.0))
        return {"symbol": mid, "bidPrice": fmt(bid[0]), "bidQty": fmt(bid[1]),
                "askPrice": fmt(ask[0]), "askQty": fmt(ask[1])}


def make_ladder(spread_bps: float, levels: int, qty: float) -> Callable[[float], tuple]:
    return lambda price: synthetic_levels(price, spread_bps, levels, qty)
