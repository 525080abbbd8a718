"""The rolling hit rate of a series' direction calls, which triggers a retrain when it drops
(:class:`bot.ops.retrain.Retrainer`)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from bot.core.events import Candle, Signal, timeframe_ms

KEEP_CLOSES = 8  # bar closes remembered per series to resolve direction calls


@dataclass(slots=True)
class AccuracyTracker:
    """Rolling hit rate of one series' direction calls; ``dropped`` once it falls below the baseline.

    A call made at a bar's close (``Signal.ts``) is right when ``P(up) > 0.5`` matches
    whether the next bar closed higher. Calls and candles may arrive in either order
    (the daemon's Engine emits a bar's signals before the bar reaches the tracker); each
    strategy's calls are kept apart, so several strategies never overwrite each other.
    """

    window: int
    drop_pct: float
    timeframe: str = "1h"
    hits: deque[bool] = field(default_factory=deque)
    baseline: float | None = None
    pending: dict[str, dict[int, float]] = field(default_factory=dict)  # strategy -> {call ts: P(up)}
    closes: dict[int, float] = field(default_factory=dict)  # bar close time -> close

    def signal(self, sig: Signal) -> None:
        if sig.probability is not None:
            self.pending.setdefault(sig.strategy, {})[sig.ts] = sig.probability
            self._resolve()

    def candle(self, c: Candle) -> None:
        self.closes[c.close_ts] = c.close
        while len(self.closes) > KEEP_CLOSES:
            del self.closes[min(self.closes)]
        self._resolve()

    def _resolve(self) -> None:
        step, oldest = timeframe_ms(self.timeframe), min(self.closes, default=0)
        for calls in self.pending.values():
            for ts, p in sorted(calls.items()):
                now, nxt = self.closes.get(ts), self.closes.get(ts + step)
                if now is not None and nxt is not None:
                    self.add((p > 0.5) == (nxt > now))
                elif now is None and ts >= oldest:
                    continue  # its bar has not reached the tracker yet
                elif nxt is None and now is not None:
                    continue  # the next bar has not closed yet
                del calls[ts]  # resolved, or its bars are gone (a gap): never resolvable

    def add(self, hit: bool) -> None:
        self.hits.append(hit)
        if len(self.hits) > self.window:
            self.hits.popleft()
        if self.baseline is None and len(self.hits) == self.window:
            self.baseline = self.accuracy()

    def accuracy(self) -> float:
        return sum(self.hits) / len(self.hits) if self.hits else float("nan")

    def dropped(self) -> bool:
        if self.baseline is None or len(self.hits) < self.window:
            return False
        return self.accuracy() < self.baseline * (1 - self.drop_pct / 100.0)

    def reset(self) -> None:
        self.hits.clear()
        self.baseline = None

    def reconfigure(self, window: int, drop_pct: float) -> None:
        """A reloaded ``[retrain]``: the rolling window and the drop that triggers (hits kept)."""
        self.window, self.drop_pct = window, drop_pct
