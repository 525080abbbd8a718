"""Rule-based baselines: the bar every neural strategy has to clear."""

from __future__ import annotations

import numpy as np

from bot.events import Direction, Signal
from strategies.base import BarContext, Strategy


class MovingAverageCrossover(Strategy):
    """Long while the fast simple moving average is above the slow one, flat otherwise."""

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

    def evaluate(self, ctx: BarContext) -> Signal | None:
        closes = ctx.window.close
        if len(closes) < self.slow:
            return None
        fast = float(np.mean(closes[-self.fast :]))
        slow = float(np.mean(closes[-self.slow :]))
        gap = (fast - slow) / slow
        # Strength grows with the separation of the averages: 1% apart -> 100.
        strength = min(100.0, 50.0 + 5000.0 * abs(gap))
        direction = Direction.LONG if gap > 0 else Direction.FLAT
        return self.signal(ctx, direction, strength, reason=f"fast-slow gap {gap:+.4%}")


class BuyAndHold(Strategy):
    """Buy on the first bar and never sell: the passive benchmark."""

    def __init__(
        self, name: str, symbols: tuple[str, ...], timeframe: str, size_pct: float = 100.0
    ) -> None:
        super().__init__(name, symbols, timeframe)
        self.default_size_pct = size_pct

    def evaluate(self, ctx: BarContext) -> Signal | None:
        return self.signal(ctx, Direction.LONG, 100.0, reason="buy and hold")
