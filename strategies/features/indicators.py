"""Incremental indicator state machines: one candle in, one tuple of values out.

Every feature is defined exactly once, here, as a small state machine whose
``step`` consumes one accepted candle. The batch path
(:func:`strategies.features.compute.compute_features`) runs the very same ``step`` over a
whole history, so batch and streaming results are bit-identical by construction
(the tests still check it to 1e-9). Rolling statistics are recomputed from the
fixed-size window with :func:`math.fsum` (exactly rounded, so no drift over long
runs and no dependence on ring order). EMAs (MACD, Wilder RSI/ATR) use one
recursion, seeded the same way in both paths.

Values are scale-free (returns, ratios, z-scores) so one model serves any price
level. A value is NaN until its look-back is filled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NAN = float("nan")
_MS_HOUR = 3_600_000
_MS_DAY = 86_400_000
_TWO_PI = 2.0 * math.pi


@dataclass(slots=True)
class Ctx:
    """The current accepted candle plus shared derived values and optional extras."""

    ts: int = 0
    open: float = NAN
    high: float = NAN
    low: float = NAN
    close: float = NAN
    volume: float = NAN
    prev_close: float = NAN
    r1: float = NAN  # log(close / prev_close)
    tr: float = NAN  # true range
    volume_delta: float = NAN  # (buy - sell) / (buy + sell) of trades in the bar
    imbalance: float = NAN  # (bid_qty - ask_qty) / (bid_qty + ask_qty) at bar close
    spread_bps: float = NAN  # (ask - bid) / mid * 1e4 at bar close


class Ring:
    """Fixed-size ring of floats (a Python list: cheaper than numpy at these sizes)."""

    __slots__ = ("buf", "n", "i", "count")

    def __init__(self, n: int) -> None:
        self.buf = [0.0] * n
        self.n = n
        self.i = 0
        self.count = 0

    def push(self, x: float) -> None:
        self.buf[self.i] = x
        self.i = (self.i + 1) % self.n
        self.count += 1

    @property
    def full(self) -> bool:
        return self.count >= self.n

    def ago(self, k: int) -> float:
        """Value pushed ``k`` pushes before the latest (0 = latest)."""
        return self.buf[(self.i - 1 - k) % self.n]


def _mean_std(values: list[float], n: int) -> tuple[float, float]:
    mean = math.fsum(values) / n
    var = math.fsum((x - mean) * (x - mean) for x in values) / n
    return mean, math.sqrt(var)


class Indicator:
    """Base: ``step(ctx)`` returns one value per output column."""

    outputs: tuple[str, ...] = ()

    def step(self, ctx: Ctx) -> tuple[float, ...]:  # pragma: no cover - abstract
        raise NotImplementedError


class LogReturn(Indicator):
    def __init__(self, bars: int) -> None:
        self.k = bars
        self.closes = Ring(bars + 1)

    def step(self, ctx: Ctx) -> tuple[float, ...]:
        self.closes.push(ctx.close)
        if self.closes.count <= self.k:
            return (NAN,)
        return (math.log(ctx.close / self.closes.ago(self.k)),)


class ATR(Indicator):
    """Wilder ATR (SMA-seeded), divided by close."""

    def __init__(self, period: int) -> None:
        self.n = period
        self.count = 0
        self.acc = 0.0
        self.atr = NAN

    def step(self, ctx: Ctx) -> tuple[float, ...]:
        self.count += 1
        if self.count <= self.n:
            self.acc += ctx.tr
            if self.count < self.n:
                return (NAN,)
            self.atr = self.acc / self.n
        else:
            self.atr = (self.atr * (self.n - 1) + ctx.tr) / self.n
        return (self.atr / ctx.close,)


class BollingerWidth(Indicator):
    """(upper - lower) / middle = 2 k sigma / SMA over ``period`` closes."""

    def __init__(self, period: int, k: float) -> None:
        self.n = period
        self.k = k
        self.closes = Ring(period)

    def step(self, ctx: Ctx) -> tuple[float, ...]:
        self.closes.push(ctx.close)
        if not self.closes.full:
            return (NAN,)
        mean, std = _mean_std(self.closes.buf, self.n)
        return (2.0 * self.k * std / mean,)


class RSI(Indicator):
    """Wilder RSI (SMA-seeded over the first ``period`` changes), scaled to [0, 1]."""

    def __init__(self, period: int) -> None:
        self.n = period
        self.count = 0
        self.gain = 0.0
        self.loss = 0.0

    def step(self, ctx: Ctx) -> tuple[float, ...]:
        if math.isnan(ctx.prev_close):
            return (NAN,)
        change = ctx.close - ctx.prev_close
        up, down = max(change, 0.0), max(-change, 0.0)
        self.count += 1
        if self.count <= self.n:
            self.gain += up
            self.loss += down
            if self.count < self.n:
                return (NAN,)
            self.gain /= self.n
            self.loss /= self.n
        else:
            self.gain = (self.gain * (self.n - 1) + up) / self.n
            self.loss = (self.loss * (self.n - 1) + down) / self.n
        if self.loss == 0.0:
            return (0.5 if self.gain == 0.0 else 1.0,)
        rs = self.gain / self.loss
        return (1.0 - 1.0 / (1.0 + rs),)


class MACD(Indicator):
    """MACD on close, normalised by close: line, signal, histogram.

    EMAs use ``alpha = 2 / (n + 1)`` seeded with the first value; the line is NaN
    until ``slow`` closes are seen, the signal until ``signal`` line values are.
    """

    outputs = ("line", "signal", "hist")

    def __init__(self, fast: int, slow: int, signal: int) -> None:
        self.af, self.as_, self.asig = 2.0 / (fast + 1), 2.0 / (slow + 1), 2.0 / (signal + 1)
        self.slow, self.signal = slow, signal
        self.count = 0
        self.sig_count = 0
        self.ema_f = NAN
        self.ema_s = NAN
        self.ema_sig = NAN

    def step(self, ctx: Ctx) -> tuple[float, ...]:
        c = ctx.close
        self.count += 1
        if self.count == 1:
            self.ema_f = c
            self.ema_s = c
        else:
            self.ema_f += self.af * (c - self.ema_f)
            self.ema_s += self.as_ * (c - self.ema_s)
        if self.count < self.slow:
            return (NAN, NAN, NAN)
        line = (self.ema_f - self.ema_s) / c
        self.sig_count += 1
        if self.sig_count == 1:
            self.ema_sig = line
        else:
            self.ema_sig += self.asig * (line - self.ema_sig)
        if self.sig_count < self.signal:
            return (line, NAN, NAN)
        return (line, self.ema_sig, line - self.ema_sig)


class RealizedVol(Indicator):
    """Root-mean-square of 1-bar log returns over ``period`` bars (per-bar volatility)."""

    def __init__(self, period: int) -> None:
        self.n = period
        self.rets = Ring(period)

    def step(self, ctx: Ctx) -> tuple[float, ...]:
        if math.isnan(ctx.r1):
            return (NAN,)
        self.rets.push(ctx.r1 * ctx.r1)
        if not self.rets.full:
            return (NAN,)
        return (math.sqrt(math.fsum(self.rets.buf) / self.n),)


class VolumeZ(Indicator):
    """(volume - mean) / std over ``period`` bars; 0 when the window is constant."""

    def __init__(self, period: int) -> None:
        self.n = period
        self.vols = Ring(period)

    def step(self, ctx: Ctx) -> tuple[float, ...]:
        self.vols.push(ctx.volume)
        if not self.vols.full:
            return (NAN,)
        mean, std = _mean_std(self.vols.buf, self.n)
        if std <= 1e-12 * max(abs(mean), 1.0):
            return (0.0,)
        return ((ctx.volume - mean) / std,)


class VWAPDistance(Indicator):
    """log(close / rolling VWAP of typical price); 0 when the window traded nothing."""

    def __init__(self, period: int) -> None:
        self.n = period
        self.pv = Ring(period)
        self.v = Ring(period)

    def step(self, ctx: Ctx) -> tuple[float, ...]:
        typical = (ctx.high + ctx.low + ctx.close) / 3.0
        self.pv.push(typical * ctx.volume)
        self.v.push(ctx.volume)
        if not self.v.full:
            return (NAN,)
        vol = math.fsum(self.v.buf)
        if vol <= 0.0:
            return (0.0,)
        return (math.log(ctx.close / (math.fsum(self.pv.buf) / vol)),)


def _neutral(x: float) -> float:
    return 0.0 if math.isnan(x) else x


class VolumeDelta(Indicator):
    def step(self, ctx: Ctx) -> tuple[float, ...]:
        return (_neutral(ctx.volume_delta),)


class BookImbalance(Indicator):
    def step(self, ctx: Ctx) -> tuple[float, ...]:
        return (_neutral(ctx.imbalance),)


class Spread(Indicator):
    def step(self, ctx: Ctx) -> tuple[float, ...]:
        return (_neutral(ctx.spread_bps),)


class HourOfDay(Indicator):
    outputs = ("sin", "cos")

    def step(self, ctx: Ctx) -> tuple[float, ...]:
        a = _TWO_PI * ((ctx.ts // _MS_HOUR) % 24) / 24.0
        return (math.sin(a), math.cos(a))


class DayOfWeek(Indicator):
    outputs = ("sin", "cos")

    def step(self, ctx: Ctx) -> tuple[float, ...]:
        # 1970-01-01 was a Thursday; Monday = 0.
        a = _TWO_PI * (((ctx.ts // _MS_DAY) + 3) % 7) / 7.0
        return (math.sin(a), math.cos(a))
