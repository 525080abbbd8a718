"""Cross-asset inputs: a peer symbol's returns and volatility, and the ratio to it (ETH/BTC).

:class:`PeerContext` is a feature indicator (``kind = "peer"`` in a feature spec).
Besides the symbol's own candles it is fed the **peer**'s accepted candles
(:meth:`strategies.features.compute.FeatureEngine.update_peer`, in time order, before or
after the symbol's own candle of the same bar: the order does not matter) and
describes the peer as of the last peer bar that had **closed when this bar
opened** (open time strictly before this bar's): the peer's bar of the same hour
closes at the same instant as this one and may arrive after it, so it is never
read. That one-bar lag makes batch == stream exact on a live feed whatever order
the two symbols' candles arrive in, and no row sees the future.

The peer of a symbol (:func:`peer_symbol`): BTC for every other base asset (the
market's leader), ETH for BTC (the reverse), in the same quote currency.

Outputs (NaN until their look-back is filled, and NaN while the peer has not
printed a bar for more than ``max_stale`` of this symbol's bars: a stale peer
never passes for a quiet one):

* ``ret_1`` / ``ret_24``: the peer's log return over 1 and ``bars`` bars;
* ``vol_24``: the peer's realised volatility (RMS of 1-bar log returns over ``bars``);
* ``ratio_ret_24``: change over ``bars`` of this symbol's bars of log(close / peer close);
* ``ratio_dev_168``: log(close / peer close) minus its mean over ``ratio_bars`` bars.

The peer's own values come from the very indicators of :mod:`strategies.features.indicators`
that the symbol's features use, run over the peer's candles.
"""

from __future__ import annotations

import math
from collections import deque

from strategies.features.indicators import NAN, Ctx, Indicator, LogReturn, RealizedVol, Ring

PEER_OF_BTC = "ETH"
LEADER = "BTC"
MAX_PENDING = 8192


def peer_symbol(symbol: str) -> str:
    """``ETH/USDT`` -> ``BTC/USDT``; ``BTC/USDT`` -> ``ETH/USDT``."""
    base, sep, quote = symbol.partition("/")
    if not sep:
        raise ValueError(f"cross-asset features need a BASE/QUOTE symbol, got {symbol!r}")
    return f"{PEER_OF_BTC if base.upper() == LEADER else LEADER}/{quote}"


class PeerContext(Indicator):
    outputs = ("ret_1", "ret_24", "vol_24", "ratio_ret_24", "ratio_dev_168")

    def __init__(self, bars: int = 24, ratio_bars: int = 168, max_stale: int = 3) -> None:
        if bars < 1 or ratio_bars < 2 or max_stale < 0:
            raise ValueError("peer features need bars >= 1, ratio_bars >= 2, max_stale >= 0")
        self.bars, self.ratio_bars, self.max_stale = int(bars), int(ratio_bars), int(max_stale)
        # peer bars not yet read (bounded: a symbol silent for a year must not grow memory)
        self._pending: deque[tuple[int, float, float, float, float]] = deque(maxlen=MAX_PENDING)
        self._peer = Ctx()
        self._peer_inds = (LogReturn(1), LogReturn(self.bars), RealizedVol(self.bars))
        self._peer_row: tuple[float, ...] = (NAN, NAN, NAN)
        self._peer_ts: int | None = None
        self._stale = 0
        self._ratios = Ring(max(self.bars, self.ratio_bars) + 1)

    def push_peer(self, ts: int, open_: float, high: float, low: float, close: float) -> None:
        """One accepted peer candle (strictly increasing ``ts``); read from the next own bar on."""
        if self._pending and ts <= self._pending[-1][0]:
            return
        self._pending.append((int(ts), open_, high, low, close))

    def _advance_peer(self, before_ts: int) -> bool:
        moved = False
        while self._pending and self._pending[0][0] < before_ts:
            ts, o, h, lo, c = self._pending.popleft()
            if self._peer_ts is not None and ts <= self._peer_ts:
                continue
            p = self._peer
            prev = p.close
            p.prev_close, p.ts, p.open, p.high, p.low, p.close = prev, ts, o, h, lo, c
            p.r1 = math.nan if math.isnan(prev) else math.log(c / prev)
            row: list[float] = []
            for indicator in self._peer_inds:
                row.extend(indicator.step(p))
            self._peer_row, self._peer_ts, moved = tuple(row), ts, True
        return moved

    def step(self, ctx: Ctx) -> tuple[float, ...]:
        self._stale = 0 if self._advance_peer(ctx.ts) else self._stale + 1
        if self._peer_ts is None or self._stale > self.max_stale:
            self._ratios = Ring(self._ratios.n)  # the ratio's history restarts with the peer
            return (NAN,) * len(self.outputs)
        ratio = math.log(ctx.close / self._peer.close)
        self._ratios.push(ratio)
        r = self._ratios
        ratio_ret = ratio - r.ago(self.bars) if r.count > self.bars else NAN
        if r.count >= self.ratio_bars:
            ratio_dev = ratio - math.fsum(r.ago(i) for i in range(self.ratio_bars)) / self.ratio_bars
        else:
            ratio_dev = NAN
        return (*self._peer_row, ratio_ret, ratio_dev)

