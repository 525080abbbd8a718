"""Producers of the loopback exchange's market streams: kline replay and recorded traffic."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import numpy as np
import structlog

from bot.exchange_sim.data import CandleSeries, Recording
from bot.exchange_sim.market import SimBook, SimTime, kline_payload
from bot.exchange_sim.ws import Hub

log = structlog.get_logger(__name__)


def envelope_data(raw: str) -> str:
    """The ``data`` member of a recorded combined-stream envelope, as the exact text."""
    start = raw.index('"data":') + len('"data":')
    return raw[start:-1]


class KlineStreamer:
    """Pushes ``<sym>@kline_<tf>``: ``updates`` x=false pushes, then the closing x=true one."""

    def __init__(
        self, series: CandleSeries, mid: str, hub: Hub, time: SimTime, updates: int,
        end_ms: int | None,
    ) -> None:
        self.series = series
        self.mid = mid
        self.stream = f"{mid.lower()}@kline_{series.timeframe}"
        self._hub = hub
        self._time = time
        self._updates = max(0, updates)
        self._end_ms = end_ms

    async def run(self) -> None:
        series, tf = self.series, self.series.tf_ms
        now = self._time.now_ms()
        i = int(np.searchsorted(series.ts + tf, now, side="right"))
        n = self._updates
        while i < len(series.ts):
            ts = int(series.ts[i])
            if self._end_ms is not None and ts + tf > self._end_ms:
                break
            for k in range(1, n + 2):
                frac = k / (n + 1)
                at = ts + (tf * k) // (n + 1)
                if k <= n and at < self._time.now_ms():
                    continue  # a stale in-progress update: only closes are never skipped
                await self._time.sleep_until(at)
                self._hub.publish_obj(self.stream, kline_payload(series, self.mid, i, frac, at))
            i += 1
        log.info("sim.klines.replay_finished", stream=self.stream)


class RecordingPlayer:
    """Replays one market's recorded traffic verbatim and keeps the exchange book in step."""

    def __init__(
        self, recording: Recording, hub: Hub, book_speed: float,
        monotonic: Callable[[], float], on_book: Callable[[str], None],
    ) -> None:
        self.recording = recording
        self.book = SimBook()
        self._hub = hub
        self._speed = book_speed
        self._mono = monotonic
        self._on_book = on_book
        self.position = 0  # lines published so far
        self.finished = False
        snap = recording.snapshot_index
        if snap is not None:
            self.book.load_snapshot(recording.lines[snap].data)

    async def run(self) -> None:
        lines = self.recording.lines
        if not lines:
            return
        t0_ns = lines[0].recv_ns
        start = self._mono()
        for idx, line in enumerate(lines):
            due = start + (line.recv_ns - t0_ns) / 1e9 / self._speed
            delay = due - self._mono()
            if delay > 0:
                await asyncio.sleep(delay)
            self.position = idx + 1
            if line.stream is None:
                continue
            is_depth = "@depth" in line.stream
            if is_depth and self.book.apply_diff(line.data):
                self._on_book(self.recording.market_id)
            if self._hub.has_listeners(line.stream):
                self._hub.publish(line.stream, envelope_data(line.raw), is_depth)
        self.finished = True
        log.info("sim.recording.finished", market=self.recording.market_id)


def book_ticker(mid: str, book: SimBook) -> dict | None:
    bid, ask = book.best()
    if bid is None or ask is None:
        return None
    return {"u": book.last_update_id, "s": mid, "b": repr(bid[0]), "B": repr(bid[1]),
            "a": repr(ask[0]), "A": repr(ask[1])}


def dumps(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"))
