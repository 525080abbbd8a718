"""Helpers for tests and benchmarks that run against the loopback exchange."""

from __future__ import annotations

from pathlib import Path

from bot.sim.recordings import load_recordings
from bot.sim.server import SimExchange
from bot.marketdata.orderbook import L2Book, Level


class ExchangeClock:
    """A ``Clock`` reading the loopback exchange's simulated time."""

    def __init__(self, sim: SimExchange, offset_ms: int = 0) -> None:
        self.sim = sim
        self.offset_ms = offset_ms

    def now_ms(self) -> int:
        return self.sim.now_ms() + self.offset_ms

    def advance_to(self, ts_ms: int) -> None:
        """The exchange's time is its own; the market does not move it."""


def reference_books(
    data_dir: Path, market_id: str, depth: int = 20, upto: int | None = None
) -> dict[int, tuple[tuple[Level, ...], tuple[Level, ...]]]:
    """Top ``depth`` levels after every diff of a recording, keyed by ``lastUpdateId``.

    Built independently of the exchange: snapshot + diffs with ``bot.marketdata.orderbook.L2Book``;
    stops once the book reaches update id ``upto``.
    """
    rec = load_recordings(data_dir)[market_id]
    snap_at = rec.snapshot_index
    assert snap_at is not None, "recording has no snapshot"
    book = L2Book(market_id)
    snap = rec.lines[snap_at].data
    book.load_snapshot(snap["lastUpdateId"], snap["bids"], snap["asks"])
    out = {book.last_update_id or 0: _top(book, depth)}
    for line in rec.lines:
        if line.stream is None or "@depth" not in line.stream:
            continue
        if book.apply_message(line.data).value == "applied":
            out[book.last_update_id or 0] = _top(book, depth)
            if upto is not None and (book.last_update_id or 0) >= upto:
                break
    return out


def _top(book: L2Book, depth: int) -> tuple[tuple[Level, ...], tuple[Level, ...]]:
    bids, asks = book.top(depth)
    return tuple(bids), tuple(asks)
