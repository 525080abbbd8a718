"""An L2 order book synchronised the Binance way, and the features the bot reads from it.

Binance's procedure for a local book: buffer ``<sym>@depth`` diffs, take a REST snapshot
(``lastUpdateId``), drop diffs with ``u <= lastUpdateId``, the first applied diff must
straddle ``lastUpdateId + 1`` (``U <= id+1 <= u``) and every later one must continue
exactly (``U == previous u + 1``). Any gap means the book is wrong: it is discarded
and rebuilt from a fresh snapshot. ``L2Book`` implements that state machine; feeding
it a diff it cannot place returns ``NEED_SNAPSHOT``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

from bot.core.events import OrderBook

Level = tuple[float, float]


class SyncResult(str, Enum):
    APPLIED = "applied"
    STALE = "stale"  # older than the book: dropped, harmless
    BUFFERED = "buffered"  # no snapshot yet: kept until one arrives
    NEED_SNAPSHOT = "need_snapshot"  # a sequence gap: the book was reset


@dataclass(frozen=True, slots=True)
class BookFeatures:
    mid: float
    spread: float
    spread_bps: float
    imbalance: float  # (bid qty - ask qty) / total over the top N levels, in [-1, 1]
    bid_depth: float  # base quantity within X bps of mid
    ask_depth: float


class L2Book:
    def __init__(self, symbol: str = "", exchange: str = "binance", max_buffer: int = 10_000
                 ) -> None:
        self.symbol = symbol
        self.exchange = exchange
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.last_update_id: int | None = None  # None: not synchronised
        self._first_applied = False
        self._buffer: list[tuple[int, int, Sequence, Sequence]] = []
        self._max_buffer = max_buffer
        self.resyncs = 0
        self.applied = 0
        self.ts = 0

    @property
    def synced(self) -> bool:
        return self.last_update_id is not None

    def reset(self) -> None:
        self.bids.clear()
        self.asks.clear()
        self.last_update_id = None
        self._first_applied = False

    def load_snapshot(self, last_update_id: int, bids: Iterable[Sequence], asks: Iterable[Sequence]
                      ) -> SyncResult:
        """Install a REST snapshot, then replay buffered diffs onto it."""
        self.bids = {float(p): float(q) for p, q in bids if float(q) > 0}
        self.asks = {float(p): float(q) for p, q in asks if float(q) > 0}
        self.last_update_id = int(last_update_id)
        self._first_applied = False
        pending, self._buffer = self._buffer, []
        for first, last, b, a in pending:
            if self._apply(first, last, b, a) is SyncResult.NEED_SNAPSHOT:
                return SyncResult.NEED_SNAPSHOT
        return SyncResult.APPLIED

    def apply_diff(self, first: int, last: int, bids: Sequence[Sequence], asks: Sequence[Sequence],
                   ts: int = 0) -> SyncResult:
        """Apply one ``depthUpdate`` (``U``=first, ``u``=last, ``b``, ``a``)."""
        if ts:
            self.ts = ts
        if self.last_update_id is None:
            if len(self._buffer) >= self._max_buffer:
                self._buffer.pop(0)
            self._buffer.append((first, last, bids, asks))
            return SyncResult.BUFFERED
        return self._apply(first, last, bids, asks)

    def apply_message(self, msg: dict) -> SyncResult:
        """Apply a Binance ``depthUpdate`` dict (the ``data`` of the stream)."""
        return self.apply_diff(msg["U"], msg["u"], msg["b"], msg["a"], msg.get("E", 0))

    def _apply(self, first: int, last: int, bids: Sequence[Sequence], asks: Sequence[Sequence]
               ) -> SyncResult:
        lid = self.last_update_id
        assert lid is not None
        if last <= lid:
            return SyncResult.STALE
        ok = (first <= lid + 1 <= last) if not self._first_applied else (first == lid + 1)
        if not ok:
            self.resyncs += 1
            self.reset()
            return SyncResult.NEED_SNAPSHOT
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for p, q in levels:
                price, qty = float(p), float(q)
                if qty == 0.0:
                    side.pop(price, None)
                else:
                    side[price] = qty
        self.last_update_id = last
        self._first_applied = True
        self.applied += 1
        return SyncResult.APPLIED

    # -- reading ---------------------------------------------------------------------

    def top(self, n: int) -> tuple[list[Level], list[Level]]:
        return heapq.nlargest(n, self.bids.items()), heapq.nsmallest(n, self.asks.items())

    def snapshot(self, depth: int = 20) -> OrderBook:
        bids, asks = self.top(depth)
        return OrderBook(self.exchange, self.symbol, self.ts, tuple(bids), tuple(asks),
                         self.last_update_id or 0)

    def features(self, top_n: int = 10, within_bps: float = 10.0) -> BookFeatures | None:
        bids, asks = self.top(max(top_n, 1))
        # depth within X bps may need more levels than top_n; take all within the band
        feats = book_features(bids, asks, top_n, within_bps)
        if feats is None:
            return None
        band = feats.mid * within_bps / 10_000.0
        bid_depth = sum(q for p, q in self.bids.items() if p >= feats.mid - band)
        ask_depth = sum(q for p, q in self.asks.items() if p <= feats.mid + band)
        return BookFeatures(feats.mid, feats.spread, feats.spread_bps, feats.imbalance,
                            bid_depth, ask_depth)


def book_features(bids: Sequence[Level], asks: Sequence[Level], top_n: int = 10,
                  within_bps: float = 10.0) -> BookFeatures | None:
    """Features of sorted levels (bids descending, asks ascending); ``None`` if one side is empty."""
    if not bids or not asks:
        return None
    best_bid, best_ask = bids[0][0], asks[0][0]
    mid = (best_bid + best_ask) / 2.0
    spread = best_ask - best_bid
    bq = sum(q for _, q in bids[:top_n])
    aq = sum(q for _, q in asks[:top_n])
    imbalance = (bq - aq) / (bq + aq) if bq + aq > 0 else 0.0
    band = mid * within_bps / 10_000.0
    bid_depth = sum(q for p, q in bids if p >= mid - band)
    ask_depth = sum(q for p, q in asks if p <= mid + band)
    spread_bps = spread / mid * 10_000.0 if mid > 0 and math.isfinite(mid) else math.nan
    return BookFeatures(mid, spread, spread_bps, imbalance, bid_depth, ask_depth)


def features_of(book: OrderBook, top_n: int = 10, within_bps: float = 10.0) -> BookFeatures | None:
    return book_features(book.bids, book.asks, top_n, within_bps)
