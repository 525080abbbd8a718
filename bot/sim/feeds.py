"""The market streams pushed on a real-time cadence (every 100 ms / 1000 ms), like Binance:

* ``<sym>@depth@100ms`` / ``<sym>@depth`` (= ``@depth@1000ms``): diffs of the exchange book;
* ``<sym>@depth<5|10|20>[@100ms]``: the top levels;
* ``<sym>@bookTicker``: the best levels whenever they change;
* ``<sym>@trade`` / ``<sym>@aggTrade``: the public trade tape as simulated time passes it;
* ``<sym>@ticker``, ``@miniTicker``, ``@ticker_<1h|4h|1d>``, ``@avgPrice``, ``!ticker@arr``,
  ``!miniTicker@arr`` (every 1000 ms).

In the raw ``recorded`` mode the recording's own ``@depth@100ms``, ``@trade`` and
``@bookTicker`` are served verbatim instead; ``@depth`` there merges its diffs per second.
"""

from __future__ import annotations

import asyncio

from bot.sim.books import PendingDiff
from bot.sim.filters import fmt
from bot.sim.venue import Venue

TICK_S = 0.1
MAX_TAPE_PUSH = 200  # trades per stream per tick (a fast replay passes thousands)


class StreamFeed:
    def __init__(self, sim: Venue) -> None:
        self.sim = sim
        self.ticks = 0
        self._tape_sent: dict[str, int] = {}  # mid -> last tape trade id pushed
        self._tops: dict[str, tuple] = {}
        self.raw_pending: dict[str, PendingDiff] = {}  # raw mode: recorded diffs for @depth

    def on_recorded_diff(self, mid: str, diff: dict) -> None:
        pending = self.raw_pending.setdefault(mid, PendingDiff())
        pending.add(int(diff["U"]), int(diff["u"]), diff["b"], diff["a"])

    async def run(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self.tick()

    def tick(self) -> None:
        self.ticks += 1
        slow = self.ticks % 10 == 0
        sim, hub, now = self.sim, self.sim.hub, self.sim.now_ms()
        for mid in sim.markets:
            low = mid.lower()
            if sim.books.raw(mid):
                pending = self.raw_pending.get(mid)
                if slow and pending is not None:
                    self._publish_diff(f"{low}@depth", f"{low}@depth@1000ms",
                                       pending.take(mid, now))
            else:
                self._book(mid, low, now, slow)
                self._tape(mid, low, now)
            if slow:
                self._tickers(mid, low, now)
        if slow:
            for name, kind in (("!ticker@arr", "ticker"), ("!miniTicker@arr", "miniTicker")):
                if hub.has_listeners(name):
                    hub.publish_obj(name, [self.ticker_event(m, kind, now)  # type: ignore[arg-type]
                                           for m in sorted(sim.markets)])

    def _publish_diff(self, *names_and_event: object) -> None:
        *names, event = names_and_event
        if event is None:
            return
        for name in names:
            self.sim.hub.publish_obj(name, event, is_depth=True)  # type: ignore[arg-type]

    def _book(self, mid: str, low: str, now: int, slow: bool) -> None:
        sim, hub = self.sim, self.sim.hub
        book = sim.books.book(mid)
        watched = any(hub.has_listeners(n) for n in hub.by_stream if n.startswith(f"{low}@depth")
                      or n == f"{low}@bookTicker")
        if watched or sim.matcher.open_orders(mid):
            if book.refresh():
                sim.on_book(mid)
        self._publish_diff(f"{low}@depth@100ms", book.pending["100ms"].take(mid, now))
        if slow:
            self._publish_diff(f"{low}@depth", f"{low}@depth@1000ms",
                               book.pending["1000ms"].take(mid, now))
        for levels in ("5", "10", "20"):
            for suffix, due in (("@100ms", True), ("", slow), ("@1000ms", slow)):
                name = f"{low}@depth{levels}{suffix}"
                if due and hub.has_listeners(name):
                    bids, asks = book.top(int(levels))
                    hub.publish_obj(name, {"lastUpdateId": book.update_id,
                                           "bids": [[fmt(p), fmt(q)] for p, q in bids],
                                           "asks": [[fmt(p), fmt(q)] for p, q in asks]})
        bids, asks = book.top(1)
        top = (bids[0] if bids else None, asks[0] if asks else None)
        if top != self._tops.get(mid) and bids and asks:
            self._tops[mid] = top
            hub.publish_obj(f"{low}@bookTicker", {
                "u": book.update_id, "s": mid, "b": fmt(bids[0][0]), "B": fmt(bids[0][1]),
                "a": fmt(asks[0][0]), "A": fmt(asks[0][1])})

    def _tape(self, mid: str, low: str, now: int) -> None:
        hub = self.sim.hub
        names = [n for n in (f"{low}@trade", f"{low}@aggTrade") if hub.has_listeners(n)]
        if not names:
            self._tape_sent.pop(mid, None)
            return
        last = self._tape_sent.get(mid)
        if last is None:  # start from now: a subscriber gets what trades after it subscribed
            latest = self.sim.data.trades(mid, 1)
            self._tape_sent[mid] = latest[-1].id if latest else 0
            return
        fresh = self.sim.data.trades(mid, MAX_TAPE_PUSH, from_id=last + 1)
        if not fresh:
            return
        self._tape_sent[mid] = fresh[-1].id
        for name in names:
            kind = name.partition("@")[2]
            for trade in fresh:
                hub.publish_obj(name, trade.stream(mid, kind, now))

    def _tickers(self, mid: str, low: str, now: int) -> None:
        hub = self.sim.hub
        for kind in ("ticker", "miniTicker"):
            if hub.has_listeners(f"{low}@{kind}"):
                hub.publish_obj(f"{low}@{kind}", self.ticker_event(mid, kind, now))
        for window, ms in (("1h", 3_600_000), ("4h", 14_400_000), ("1d", 86_400_000)):
            if hub.has_listeners(f"{low}@ticker_{window}"):
                t = self.sim.ticker(mid, ms)
                hub.publish_obj(f"{low}@ticker_{window}", {
                    "e": f"{window}Ticker", "E": now, "s": mid, "p": t["priceChange"],
                    "P": t["priceChangePercent"], "o": t["openPrice"], "h": t["highPrice"],
                    "l": t["lowPrice"], "c": t["lastPrice"], "w": t["weightedAvgPrice"],
                    "v": t["volume"], "q": t["quoteVolume"], "O": t["openTime"],
                    "C": t["closeTime"], "F": t["firstId"], "L": t["lastId"], "n": t["count"]})
        if hub.has_listeners(f"{low}@avgPrice"):
            hub.publish_obj(f"{low}@avgPrice", {"e": "avgPrice", "E": now, "s": mid, "i": "5m",
                                                "w": fmt(self.sim.data.avg_price(mid)), "T": now})

    def ticker_event(self, mid: str, kind: str, now: int) -> dict:
        t = self.sim.ticker(mid, 86_400_000)
        mini = {"E": now, "s": mid, "c": t["lastPrice"], "o": t["openPrice"],
                "h": t["highPrice"], "l": t["lowPrice"], "v": t["volume"], "q": t["quoteVolume"]}
        if kind == "miniTicker":
            return {"e": "24hrMiniTicker"} | mini
        return {"e": "24hrTicker"} | mini | {
            "p": t["priceChange"], "P": t["priceChangePercent"], "w": t["weightedAvgPrice"],
            "x": t["prevClosePrice"], "Q": t["lastQty"], "b": t["bidPrice"], "B": t["bidQty"],
            "a": t["askPrice"], "A": t["askQty"], "O": t["openTime"], "C": t["closeTime"],
            "F": t["firstId"], "L": t["lastId"], "n": t["count"]}
