"""Per-(symbol, timeframe) rolling feature buffer for live inference.

Built on :class:`bot.core.buffer.CandleBuffer`: a candle first goes through the candle
buffer's validation (NaN, non-positive, inverted, duplicate or out-of-order
candles are rejected with a logged reason); only an accepted candle advances the
incremental :class:`strategies.features.compute.FeatureEngine` and appends one feature
row. Feature rows live in a fixed numpy ring (allocated once, 2x capacity so the
latest window is always one contiguous slice): memory never grows with run time.

Optional microstructure inputs arrive between candles through :meth:`on_book` /
:meth:`on_trade`; they are attached to the next accepted candle and then reset,
so a bar without book or trade data gets the neutral value (0).
"""

from __future__ import annotations

import math

import numpy as np
import structlog

from bot.core.buffer import CandleBuffer
from bot.core.events import Candle, OrderBook, Side, Trade
from strategies.features.compute import DEFAULT_SPEC, FeatureEngine, FeatureSpec

log = structlog.get_logger(__name__)


class FeatureBuffer:
    def __init__(
        self,
        symbol: str,
        timeframe: str,
        spec: FeatureSpec = DEFAULT_SPEC,
        n_steps: int = 100,
        capacity: int | None = None,
    ) -> None:
        if n_steps < 1:
            raise ValueError("n_steps must be >= 1")
        self.symbol = symbol
        self.timeframe = timeframe
        self.spec = spec
        self.n_steps = n_steps
        self.capacity = max(capacity or 0, n_steps, 2)
        self.candles = CandleBuffer(symbol, timeframe, capacity=max(self.capacity, spec.max_lookback + 1))
        self._engine = FeatureEngine(spec)
        self._rows = np.full((2 * self.capacity, spec.n_features), np.nan, dtype=np.float64)
        self._ts = np.zeros(2 * self.capacity, dtype=np.int64)
        self._start = 0
        self._len = 0
        self._reset_bar_inputs()

    # -- microstructure inputs -------------------------------------------------
    def _reset_bar_inputs(self) -> None:
        self._buy_vol = 0.0
        self._sell_vol = 0.0
        self._imbalance = math.nan
        self._spread_bps = math.nan

    def on_book(self, mid: float, spread: float, imbalance: float) -> None:
        """Latest top-of-book state: ``spread`` in quote units, ``imbalance`` in [-1, 1]."""
        if math.isfinite(mid) and mid > 0 and math.isfinite(spread) and spread >= 0:
            self._spread_bps = spread / mid * 1e4
        if math.isfinite(imbalance):
            self._imbalance = max(-1.0, min(1.0, imbalance))

    def on_order_book(self, book: OrderBook, depth: int = 10) -> None:
        if book.symbol != self.symbol or not book.bids or not book.asks:
            return
        bid_q = sum(q for _, q in book.bids[:depth])
        ask_q = sum(q for _, q in book.asks[:depth])
        total = bid_q + ask_q
        imb = (bid_q - ask_q) / total if total > 0 else math.nan
        mid = book.mid or math.nan
        self.on_book(mid, book.asks[0][0] - book.bids[0][0], imb)

    def on_trade(self, amount: float, is_buy: bool) -> None:
        """One public trade in the current bar (taker side ``is_buy``)."""
        if not math.isfinite(amount) or amount <= 0:
            return
        if is_buy:
            self._buy_vol += amount
        else:
            self._sell_vol += amount

    def on_trade_event(self, trade: Trade) -> None:
        if trade.symbol == self.symbol:
            self.on_trade(trade.amount, trade.side == Side.BUY)

    def _volume_delta(self) -> float:
        total = self._buy_vol + self._sell_vol
        return (self._buy_vol - self._sell_vol) / total if total > 0 else math.nan

    # -- candles ---------------------------------------------------------------
    def on_candle(self, candle: Candle) -> str | None:
        """Validate and ingest a closed candle. Returns ``None`` or the rejection reason."""
        if candle.symbol != self.symbol or candle.timeframe != self.timeframe:
            reason = f"wrong stream {candle.symbol} {candle.timeframe}"
            log.warning("candle_rejected", symbol=self.symbol, timeframe=self.timeframe,
                        ts=candle.ts, reason=reason)
            return reason
        reason = self.candles.append(candle)
        if reason is not None:
            return reason
        row = self._engine.update(
            candle.ts, candle.open, candle.high, candle.low, candle.close, candle.volume,
            self._volume_delta(), self._imbalance, self._spread_bps,
        )
        self._reset_bar_inputs()
        self._push(candle.ts, row)
        return None

    def on_peer_candle(self, candle: Candle) -> None:
        """A closed candle of the peer symbol, already accepted by the peer's own buffer (the
        cross-asset features read it from the first own bar that opens after it closed)."""
        if candle.timeframe == self.timeframe and candle.symbol != self.symbol:
            self._engine.update_peer(candle.ts, candle.open, candle.high, candle.low, candle.close)

    def on_candles(self, candles: list[Candle]) -> int:
        """Ingest candles in order; returns how many were accepted."""
        return sum(self.on_candle(c) is None for c in candles)

    def _push(self, ts: int, row: list[float]) -> None:
        if self._start + self._len == 2 * self.capacity:
            self._rows[: self._len] = self._rows[self._start : self._start + self._len]
            self._ts[: self._len] = self._ts[self._start : self._start + self._len]
            self._start = 0
        i = self._start + self._len
        self._rows[i] = row
        self._ts[i] = ts
        if self._len < self.capacity:
            self._len += 1
        else:
            self._start += 1

    # -- reading -----------------------------------------------------------------
    def __len__(self) -> int:
        return self._len

    @property
    def columns(self) -> tuple[str, ...]:
        return self.spec.columns

    def window(self, n: int | None = None) -> np.ndarray:
        """The last ``n`` feature rows, oldest first, as a read-only view ``[n, n_features]``."""
        n = self._len if n is None else min(n, self._len)
        view = self._rows[self._start + self._len - n : self._start + self._len].view()
        view.flags.writeable = False
        return view

    def timestamps(self, n: int | None = None) -> np.ndarray:
        n = self._len if n is None else min(n, self._len)
        return self._ts[self._start + self._len - n : self._start + self._len].copy()

    @property
    def ready(self) -> bool:
        """True once the last ``n_steps`` rows are all finite (warm-up done)."""
        return self._len >= self.n_steps and bool(np.isfinite(self.window(self.n_steps)).all())

    def latest_window(self, n_steps: int | None = None) -> np.ndarray | None:
        """``[1, n_steps, n_features]`` float64 copy (bit-identical to the batch features), or ``None``."""
        n = n_steps or self.n_steps
        if n > self.capacity:
            raise ValueError(f"n_steps {n} exceeds buffer capacity {self.capacity}")
        if self._len < n:
            return None
        w = self.window(n)
        if not np.isfinite(w).all():
            return None
        return np.array(w, dtype=np.float64)[None]
