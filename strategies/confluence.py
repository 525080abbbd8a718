"""Multi-timeframe confluence: separate strategies on 4H, 1D and 1W bars; trade when aligned.

The strategy runs on the base stream (``timeframe``, normally 1h). Every base
candle is fed to one exact :class:`~bot.core.aggregate.CandleAggregator` per member
timeframe; each completed 4H / 1D / 1W candle goes into that member's own
candle buffer and its strategy (a neural ensemble with models trained on that
timeframe, or any baseline) evaluates it. Incomplete buckets (gaps in the base
stream) are dropped, so members only ever see candles the exchange would
publish. No Engine change is needed: the Engine shows this strategy every base
bar (``warmup = 1``).

On every base bar where at least one member produced a new signal, the latest
signals of all members are combined:

* **long** when at least ``require`` members are long (``"all"`` by default);
  strength is the mean of the long members' strengths, the size the smallest
  long member's size (the most cautious agreeing member sizes the trade);
* otherwise **flat** (``exit_when = "lost"``: exit as soon as the confluence is
  lost), or, with ``exit_when = "all_flat"``, hold until every member is flat.

Votes are stored as ``"<timeframe>:<member>" -> direction``; attributions are
the mean of the members' attributions (:meth:`explain`, asked by the Engine
after it acted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from bot.core.aggregate import CandleAggregator
from bot.core.buffer import CandleBuffer
from bot.core.events import Direction, OrderBook, Signal, Trade, timeframe_ms
from strategies.base import BarContext, Strategy
from strategies.catalog import build_strategy

log = structlog.get_logger(__name__)

RISK_ORDER = {"": 0, "low": 1, "medium": 2, "high": 3}


@dataclass(frozen=True, slots=True)
class Member:
    label: str  # "<timeframe>:<name>"
    timeframe: str
    strategy: Strategy


class Confluence(Strategy):
    def __init__(
        self, name: str, symbols: tuple[str, ...], timeframe: str,
        members: Sequence[Mapping[str, Any]], require: int | str = "all",
        exit_when: str = "lost", horizon: str = "",
    ) -> None:
        super().__init__(name, symbols, timeframe)
        if not members:
            raise ValueError("members: list at least one { timeframe, kind, params } table")
        base = timeframe_ms(timeframe)
        self.members: list[Member] = []
        for i, m in enumerate(members):
            unknown = set(m) - {"timeframe", "kind", "params", "name"}
            if unknown or "timeframe" not in m or "kind" not in m:
                raise ValueError(f"members[{i}]: needs timeframe and kind (+ params, name); "
                                 f"unknown keys {sorted(unknown)}")
            tf = str(m["timeframe"])
            if timeframe_ms(tf) < base or timeframe_ms(tf) % base:
                raise ValueError(f"members[{i}]: timeframe {tf} is not a multiple of the base {timeframe}")
            label = f"{tf}:{m.get('name', m['kind'])}"
            strat = build_strategy(str(m["kind"]), f"{name}/{label}", symbols, tf,
                                   dict(m.get("params", {})), where=f"{name}.members[{i}]")
            self.members.append(Member(label, tf, strat))
        labels = [m.label for m in self.members]
        if len(set(labels)) != len(labels):
            raise ValueError(f"members: labels must be unique (add name = ...); got {labels}")
        n = len(self.members)
        self.require = n if require == "all" else int(require)
        if not 1 <= self.require <= n:
            raise ValueError(f"require must be 'all' or 1..{n}, got {require!r}")
        if exit_when not in ("lost", "all_flat"):
            raise ValueError(f"exit_when must be 'lost' or 'all_flat', got {exit_when!r}")
        self.exit_when = exit_when
        self.horizon = horizon or min(self.members, key=lambda m: timeframe_ms(m.timeframe)).timeframe
        self.warmup = 1
        self._aggs: dict[tuple[str, str], CandleAggregator] = {}
        self._bufs: dict[tuple[str, str], CandleBuffer] = {}
        self._latest: dict[tuple[str, str], Signal] = {}

    def market_streams(self) -> frozenset[str]:
        return frozenset().union(*(m.strategy.market_streams() for m in self.members))

    def on_market(self, event: OrderBook | Trade) -> None:
        """Every member sees the books and trades (its buffer folds them into its own bar)."""
        for m in self.members:
            m.strategy.on_market(event)

    def history_bars(self) -> int:
        """Base bars that warm every member on its own timeframe (plus one partial bucket)."""
        base = timeframe_ms(self.timeframe)
        return max((m.strategy.history_bars() + 1) * (timeframe_ms(m.timeframe) // base) for m in self.members)

    def _feed(self, symbol: str, m: Member, ctx: BarContext) -> bool:
        """Push the base candle to member ``m``; True when it produced a new signal."""
        key = (symbol, m.label)
        if m.timeframe == self.timeframe:
            done = [ctx.candle]
        else:
            agg = self._aggs.get(key)
            if agg is None:
                agg = self._aggs[key] = CandleAggregator(symbol, m.timeframe, self.timeframe,
                                                         ctx.candle.exchange)
            done = agg.push(ctx.candle)
        new = False
        for candle in done:
            buf = self._bufs.get(key)
            if buf is None:
                buf = self._bufs[key] = CandleBuffer(symbol, m.timeframe, max(m.strategy.warmup, 2) + 1)
            if buf.append(candle) is not None or len(buf) < m.strategy.warmup:
                continue
            sub = BarContext(candle, buf.window(max(m.strategy.warmup, 2)), ctx.position)
            sig = m.strategy.evaluate(sub)
            if sig is not None:
                self._latest[key] = sig
                new = True
        return new

    def evaluate(self, ctx: BarContext) -> Signal | None:
        symbol = ctx.candle.symbol
        updated = [self._feed(symbol, m, ctx) for m in self.members]
        if not any(updated):
            return None
        sigs = [self._latest.get((symbol, m.label)) for m in self.members]
        if any(s is None for s in sigs):
            return None
        ready = [s for s in sigs if s is not None]
        votes = {m.label: s.direction.value for m, s in zip(self.members, ready, strict=True)}
        longs = [s for s in ready if s.direction is Direction.LONG]
        probs = [s.probability for s in ready if s.probability is not None]
        risk = max((s.risk_level for s in ready), key=lambda r: RISK_ORDER.get(r, 0))
        extra: dict[str, Any] = dict(
            probability=round(sum(probs) / len(probs), 6) if probs else None, horizon=self.horizon,
            risk_level=risk, votes=votes,
        )
        summary = f"{len(longs)}/{len(ready)} timeframes long (need {self.require}): " + ", ".join(
            f"{k}={v}" for k, v in votes.items())
        if len(longs) >= self.require:
            strength = sum(s.strength for s in longs) / len(longs)
            size = min(s.size_pct for s in longs)
            return self.signal(ctx, Direction.LONG, round(strength, 4), reason=summary,
                               size_pct=size, **extra)
        flats = [s for s in ready if s.direction is Direction.FLAT]
        if self.exit_when == "lost" or len(flats) == len(ready):
            strength = sum(s.strength for s in flats) / len(flats) if flats else 50.0
            return self.signal(ctx, Direction.FLAT, round(strength, 4), reason=summary, **extra)
        held = Direction.LONG if ctx.position > 0 else Direction.FLAT
        return self.signal(ctx, held, 50.0, reason=summary + "; hold", size_pct=0.0, **extra)


    def explain(self, signal: Signal) -> dict[str, float]:
        """The mean of the members' attributions for the signals this one combined."""
        latest = [(m, self._latest.get((signal.symbol, m.label))) for m in self.members]
        return _mean_attributions([m.strategy.explain(s) for m, s in latest if s is not None])


def _mean_attributions(explained: Sequence[dict[str, float]], k: int = 5) -> dict[str, float]:
    with_attr = [a for a in explained if a]
    if not with_attr:
        return {}
    total: dict[str, float] = {}
    for attr in with_attr:
        for name, v in attr.items():
            total[name] = total.get(name, 0.0) + v / len(with_attr)
    best = sorted(total.items(), key=lambda kv: -abs(kv[1]))[:k]
    return {name: round(v, 4) for name, v in best}
