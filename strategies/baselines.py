"""Rule-based baselines: the bar every neural strategy has to clear.

They implement the same ``Strategy`` interface as the neural strategies, so the
evaluation runs everything through the same Engine on equal footing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bot.core.events import Candle, Direction, Signal
from strategies.base import BarContext, Strategy
from strategies.features.compute import FeatureDef, FeatureEngine, FeatureSpec
from strategies.window_sums import trailing_sums


class MovingAverageCrossover(Strategy):
    """Long while the fast simple moving average is above the slow one, flat otherwise.

    A finite replay (:meth:`prepare_replay`) computes every bar's gap between the averages
    at once, bit-identical to bar-by-bar evaluation; a bar that is not the one prepared
    next (the Engine rejected or added a candle the preparation did not expect) ends the
    prepared series of its symbol, which is then evaluated bar by bar.
    """

    def __init__(
        self, name: str, symbols: tuple[str, ...], timeframe: str, fast: int = 20, slow: int = 50,
        size_pct: float = 10.0,
    ) -> None:
        if not 1 <= fast < slow:
            raise ValueError(f"moving-average crossover needs 1 <= fast < slow, got {fast}/{slow}")
        super().__init__(name, symbols, timeframe)
        self.fast, self.slow = fast, slow
        self.warmup = slow
        self.default_size_pct = size_pct
        self._prepared: dict[str, _PreparedGaps] = {}

    def prepare_replay(self, symbol: str, candles: Sequence[Candle]) -> None:
        """Every gap of the replay's candles the Engine's buffer will accept, vectorised."""
        accepted = _accepted(candles)
        closes = np.array([c.close for c in accepted], dtype=np.float64)
        # the means of the windows ending at each bar from the slow-th on
        fast = trailing_sums(closes, self.fast)[self.slow - self.fast :] / self.fast
        slow = trailing_sums(closes, self.slow) / self.slow
        with np.errstate(all="ignore"):  # as bar by bar: IEEE results, no warnings
            gaps = (fast - slow) / slow
        self._prepared[symbol] = _PreparedGaps(accepted, self.slow - 1, gaps.tolist())

    def evaluate(self, ctx: BarContext) -> Signal | None:
        prepared = self._prepared.get(ctx.candle.symbol)
        if prepared is not None:
            gap = prepared.take(ctx.candle)
            if gap is not None:
                return self._signal(ctx, gap)
            del self._prepared[ctx.candle.symbol]  # not the bar prepared: bar by bar from here on
        closes = ctx.window.close
        if len(closes) < self.slow:
            return None
        # np.add.reduce is what ndarray.sum runs (the same pairwise sum), without its wrapper
        fast = float(np.add.reduce(closes[-self.fast :]) / self.fast)  # == np.mean
        slow = float(np.add.reduce(closes[-self.slow :]) / self.slow)
        return self._signal(ctx, (fast - slow) / slow)

    def _signal(self, ctx: BarContext, gap: float) -> Signal:
        # Strength grows with the separation of the averages: 1% apart -> 100.
        strength = min(100.0, 50.0 + 5000.0 * abs(gap))
        direction = Direction.LONG if gap > 0 else Direction.FLAT
        return self.signal(ctx, direction, strength, reason=f"fast-slow gap {gap:+.4%}")


class _PreparedGaps:
    """One symbol's prepared gaps, handed out in the order of the accepted candles."""

    __slots__ = ("candles", "first", "gaps", "next")

    def __init__(self, candles: list[Candle], first: int, gaps: list[float]) -> None:
        self.candles, self.gaps = candles, gaps  # gaps[k]: the gap of candles[first + k]
        self.first = self.next = first  # the first bar with a full slow window: the first evaluated

    def take(self, candle: Candle) -> float | None:
        """The gap of ``candle`` if it is the bar expected next, else ``None``."""
        i = self.next
        if i >= len(self.candles):
            return None
        expected = self.candles[i]
        if expected is not candle and expected != candle:
            return None
        self.next = i + 1
        return self.gaps[i - self.first]


def _accepted(candles: Sequence[Candle]) -> list[Candle]:
    """The candles a ``CandleBuffer`` keeps: sane (``Candle.problem``) and later than the last
    one kept. Only a prediction: a bar the Engine then evaluates otherwise is caught by
    ``_PreparedGaps.take``."""
    kept: list[Candle] = []
    last: int | None = None
    for candle in candles:
        if candle.problem() is None and (last is None or candle.ts > last):
            kept.append(candle)
            last = candle.ts
    return kept


class BuyAndHold(Strategy):
    """Buy on the first bar and never sell: the passive benchmark."""

    def __init__(
        self, name: str, symbols: tuple[str, ...], timeframe: str, size_pct: float = 100.0
    ) -> None:
        super().__init__(name, symbols, timeframe)
        self.default_size_pct = size_pct

    def evaluate(self, ctx: BarContext) -> Signal | None:
        return self.signal(ctx, Direction.LONG, 100.0, reason="buy and hold")


class RsiMacd(Strategy):
    """RSI + MACD combination (momentum confirmed by RSI, exhaustion filtered).

    * **long** when the MACD histogram is positive (MACD line above its signal)
      and ``rsi_min <= RSI < overbought``: momentum up, RSI confirms, not stretched;
    * **flat** when the histogram turns negative or RSI reaches ``overbought``;
    * otherwise hold (the signal repeats the current position, size 0).

    RSI (Wilder) and MACD are the very indicator state machines the feature
    pipeline uses, updated incrementally once per closed bar (warmup 1: the
    strategy sees every bar and keeps its own state per symbol).
    Strength: 65 at a zero histogram rising to 100 when it reaches ``hist_full``
    (a fraction of price, MACD being normalised by close).
    """

    def __init__(
        self, name: str, symbols: tuple[str, ...], timeframe: str, rsi_period: int = 14,
        fast: int = 12, slow: int = 26, signal: int = 9, rsi_min: float = 50.0,
        overbought: float = 70.0, hist_full: float = 0.002, size_pct: float = 10.0,
    ) -> None:
        if not 1 <= fast < slow or signal < 1 or rsi_period < 2:
            raise ValueError(f"rsi_macd needs 1 <= fast < slow, signal >= 1, rsi_period >= 2; "
                             f"got {fast}/{slow}/{signal}/{rsi_period}")
        if not 0.0 <= rsi_min < overbought <= 100.0:
            raise ValueError(f"rsi_macd needs 0 <= rsi_min < overbought <= 100, got {rsi_min}/{overbought}")
        if hist_full <= 0:
            raise ValueError("hist_full must be > 0")
        super().__init__(name, symbols, timeframe)
        self.spec = FeatureSpec("rsi_macd", (
            FeatureDef("rsi", "rsi", (("period", rsi_period),)),
            FeatureDef("macd", "macd", (("fast", fast), ("signal", signal), ("slow", slow))),
        ))
        self.rsi_min, self.overbought, self.hist_full = rsi_min, overbought, hist_full
        self.default_size_pct = size_pct
        self._engines: dict[str, FeatureEngine] = {}

    def history_bars(self) -> int:
        return self.spec.settle_bars  # RSI and MACD smooth recursively: their start must fade

    def evaluate(self, ctx: BarContext) -> Signal | None:
        c = ctx.candle
        engine = self._engines.setdefault(c.symbol, FeatureEngine(self.spec))
        rsi01, _line, _sig, hist = engine.update(c.ts, c.open, c.high, c.low, c.close, c.volume)
        if math.isnan(rsi01) or math.isnan(hist):
            return None
        rsi = 100.0 * rsi01
        strength = 65.0 + 35.0 * min(1.0, abs(hist) / self.hist_full)
        why = f"RSI {rsi:.1f}, MACD hist {hist:+.5f}"
        if hist > 0 and self.rsi_min <= rsi < self.overbought:
            return self.signal(ctx, Direction.LONG, strength, reason=f"long: {why}")
        if hist < 0 or rsi >= self.overbought:
            return self.signal(ctx, Direction.FLAT, strength, reason=f"flat: {why}")
        held = Direction.LONG if ctx.position > 0 else Direction.FLAT
        return self.signal(ctx, held, 50.0, reason=f"hold: {why}", size_pct=0.0)
