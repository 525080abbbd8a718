"""``Strategy.signal`` (identity and bar passed positionally) builds the Signal a construction by
keyword builds, extras and the default size included."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot.core.events import TIMEFRAME_MS, Candle, Direction, Signal
from strategies.base import BarContext, Strategy


class Fixed(Strategy):
    def evaluate(self, ctx: BarContext) -> Signal | None:
        return None


extras = st.fixed_dictionaries({}, optional={
    "size_pct": st.floats(0, 100), "probability": st.floats(0, 1), "horizon": st.text(max_size=3),
    "votes": st.dictionaries(st.text(max_size=3), st.sampled_from(["long", "flat"]), max_size=2)})


@given(symbol=st.text(min_size=1, max_size=8), timeframe=st.sampled_from(sorted(TIMEFRAME_MS)),
       ts=st.integers(0, 2**40), direction=st.sampled_from(Direction), strength=st.floats(0, 100),
       reason=st.text(max_size=8), extra=extras)
def test_signal_is_the_keyword_construction(symbol: str, timeframe: str, ts: int, direction: Direction,
                                            strength: float, reason: str, extra: dict[str, Any]) -> None:
    strategy = Fixed("fixed", (symbol,), timeframe)
    candle = Candle("x", symbol, timeframe, ts, 1.0, 1.0, 1.0, 1.0, 1.0)
    built = strategy.signal(BarContext(candle, None, 0.0), direction, strength, reason, **dict(extra))  # type: ignore[arg-type]
    size = extra.pop("size_pct", strategy.default_size_pct if direction is Direction.LONG else 0.0)
    assert built == Signal(strategy="fixed", symbol=symbol, timeframe=timeframe, ts=candle.close_ts,
                           direction=direction, strength=strength, size_pct=size, reason=reason, **extra)
