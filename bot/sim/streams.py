"""Producers of the loopback exchange's market streams: kline replay and recorded traffic."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import structlog

from bot.sim.recordings import Recording
from bot.sim.klines import KlineSource
from bot.sim.market import SimBook, SimTime
from bot.sim.ws import Hub

log = structlog.get_logger(__name__)


def envelope_data(raw: str) -> str:
    """The ``data`` member of a recorded combined-stream envelope, as the exact text."""
    start = raw.index('"data":') + len('"data":')
    return raw[start:-1]


class KlineStreamer:
    """Pushes ``<sym>@kline_<interval>``: ``updates`` x=false pushes per bar, then the close."""

    def __init__(self, source: KlineSource, mid: str, hub: Hub, time: SimTime, updates: int,
                 end_ms: int | None) -> None:
        self.source = source
        self.mid = mid
        self.stream = f"{mid.lower()}@kline_{source.interval}"
        self._hub = hub
        self._time = time
        self._updates = max(0, updates)
        self._end_ms = end_ms

    async def run(self) -> None:
        src, n = self.source, self._updates
        i = int(np.searchsorted(src.ends, self._time.now_ms(), side="right"))
        while i < len(src.ts):
            ts, end = int(src.ts[i]), int(src.ends[i])
            if self._end_ms is not None and end > self._end_ms:
                break
            for k in range(1, n + 2):
                at = ts + ((end - ts) * k) // (n + 1)
                if k <= n and at < self._time.now_ms():
                    continue  # a stale in-progress update: only closes are never skipped
                await self._time.sleep_until(at)
                self._hub.publish_obj(self.stream, src.payload(self.mid, i, at, at))
            i += 1
        log.info("sim.klines.replay_finished", stream=self.stream)


class RecordingPlayer:
    """Replays one market's recorded traffic verbatim and keeps the exchange book in step."""

    def __init__(
        self, recording: Recording, hub: Hub, book_speed: float,
        monotonic: Callable[[], float], on_book: Callable[[str, dict], None],
        verbatim: bool = True,
    ) -> None:
        self.recording = recording
        self.verbatim = verbatim  # publish the recorded streams; else loop, as a shape source
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
        while True:
            await self._play_once()
            if self.verbatim or self.recording.snapshot_index is None:
                break
            self.book.load_snapshot(self.recording.lines[self.recording.snapshot_index].data)
        self.finished = True
        log.info("sim.recording.finished", market=self.recording.market_id)

    async def _play_once(self) -> None:
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
                self._on_book(self.recording.market_id, line.data)
            if self.verbatim and self._hub.has_listeners(line.stream):
                self._hub.publish(line.stream, envelope_data(line.raw), is_depth)
