"""The neural ensemble strategy: n trained models vote on every closed bar.

Models reach it through predictors (:mod:`strategies.predictor`), one per symbol,
reading that symbol's :class:`~strategies.predictor.ModelHolder`. Live path
(paper/live/backtest alike): a :class:`~strategies.predictor.LivePredictor` keeps a
feature buffer fed every closed candle the strategy is shown (``warmup = 1``, so the
Engine shows it every accepted bar); each model predicts P(up) from the latest window,
the votes are counted
(:mod:`strategies.ensemble`) and the decision becomes a Signal with strength,
confidence interval, horizon, risk level, size and votes. Feature attributions
(:mod:`strategies.models.explain`; for acted signals by default) come from :meth:`explain`,
which the Engine calls after it has acted, so explaining never delays an order.

Fast path (evaluation): :meth:`NeuralEnsemble.precompute` computes the features
of a whole history and every model's predictions for all of its windows in one
batch per model (a :class:`~strategies.predictor.TablePredictor`); the Engine then
replays the candles and ``evaluate`` only looks predictions up. Features are causal
and computed by the same engine as the live buffer, so when the replay covers the
same candles as the history, both paths give the same signals (tested).

With a ``decision`` table the vote is replaced by the decision layer
(:mod:`strategies.edge`, :mod:`strategies.decision`): the mean probability and the
volatility forecast become an expected net edge over the label horizon, traded
with hysteresis, holding times, a no-trade band and a volatility-targeted size.

The strategy loads nothing: :func:`strategies.holders.neural_ensemble` builds it
from a configuration, its models loaded from the registry into the holders; the
retrainer swaps models in those holders.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import structlog
import torch

from bot.core.events import Candle, Direction, OrderBook, Signal, SignalExplained, Trade, timeframe_ms
from strategies.base import BarContext, Strategy
from strategies.features.cross import peer_symbol
from strategies.edge import EdgeLayer, edge_policy
from strategies.training.labels import move_function
from strategies.ensemble import Decision, decide, log_loss_weights, vote, voting_setup
from strategies.models.explain import attributions, batch_attributions, combine, top_shares
from strategies.features.compute import FeatureSpec, get_spec
from strategies.features.history import OHLCV_KEYS, History, clean_history
from strategies.models.base import PREDICT_BATCH, Model
from strategies.predictor import (
    LivePredictor,
    ModelHolder,
    Prediction,
    PredictionTable,
    Predictor,
    TablePredictor,
    Window,
    predict_table,
)
from strategies.signals import annualised_vol

log = structlog.get_logger(__name__)


def set_torch_threads(threads: int) -> None:
    """Small models predict latency-bound: on a shared 2-core box, 2 intra-op threads
    predicted 5-10x slower than 1 (batches of 512 windows, the five default models)."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)


def table_workers() -> int:
    """Threads that fill a prediction table: the CPUs this process may use over torch's intra-op
    threads (1 by default), so that each runs its own batches and no thread pool spin-waits."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cpus // torch.get_num_threads())


def horizon_label(bars: int, timeframe: str) -> str:
    """``24`` bars of ``1h`` -> ``"1d"``; ``4`` of ``1h`` -> ``"4h"``; ``1`` of ``1w`` -> ``"1w"``."""
    ms = bars * timeframe_ms(timeframe)
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


# a signal to explain after the replay: (signal, window getter, the models then, vote weights)
_Deferred = tuple[Signal, Window, Mapping[str, Model], Mapping[str, float]]


@dataclass(slots=True)
class _Book:
    """Per-symbol state: the models' holder, the live predictor, vote weights, and the
    precomputed table's predictor while it stands."""

    holder: ModelHolder
    live: LivePredictor
    weights: dict[str, float]
    table: TablePredictor | None = None
    replaying: bool = False  # the table covers a finite replay: explain after it, in batches

    def predictor(self) -> Predictor:
        """The table while the holder has the models it was computed with, else live."""
        if self.table is not None and not self.table.current:
            if self.table.table.fill is not None:
                self.table.table.fill.cancel()
            self.table = None  # a model was swapped in: later bars predict live
        return self.table or self.live


class NeuralEnsemble(Strategy):
    """k-of-n voting ensemble of trained models (see module docstring)."""

    def __init__(
        self, name: str, symbols: tuple[str, ...], timeframe: str, holders: Mapping[str, ModelHolder],
        features: str = "default",
        vote_k: int | None = None, threshold: float = 0.55, weighting: str = "equal",
        val_log_loss: Mapping[str, float] | None = None,
        horizon: str = "", vol_days: float = 7.0,
        exit_rule: str = "consensus", explain: str = "acted", top_features: int = 5,
        ig_steps: int = 32, act_strength: float = 65.0, saturation: float = 0.75,
        min_size_pct: float = 1.0, max_size_pct: float = 10.0, min_agreement_scale: float = 0.6,
        ci_method: str = "spread", ci_level: float = 0.9,
        risk_low_below: float = 0.50, risk_high_above: float = 0.85,
        risk_multipliers: Mapping[str, float] | None = None,
        decision: Mapping[str, Any] | None = None, threads: int | None = 1,
    ) -> None:
        super().__init__(name, symbols, timeframe)
        if threads is not None:  # torch's intra-op threads for every prediction in this process
            set_torch_threads(threads)
        if set(holders) != set(symbols):
            raise ValueError(f"holders: one per symbol of {symbols}, got {sorted(holders)}")
        names = list(holders[symbols[0]].models) if symbols else []
        if not names:
            raise ValueError("models: list at least one model")
        if explain not in ("acted", "all", "none"):
            raise ValueError(f"explain must be 'acted', 'all' or 'none', got {explain!r}")
        setup = voting_setup(len(names), vote_k, threshold, weighting, exit_rule, act_strength, saturation,
                             min_size_pct, max_size_pct, min_agreement_scale, ci_method, ci_level,
                             risk_low_below, risk_high_above, risk_multipliers)
        self.rule, self.policy = setup.rule, setup.policy
        self.exit_rule, self.explain_mode, self.top_features, self.ig_steps = (
            exit_rule, explain, top_features, ig_steps)
        # per symbol: the last signal to explain and how (computed on demand, once)
        self._unexplained: dict[str, tuple[str, Callable[[], dict[str, float]]]] = {}
        # a prepared replay's signals to explain once it has ended
        self._deferred: list[_Deferred] = []
        self.spec: FeatureSpec = get_spec(features)
        self.vol_bars = max(1, int(round(vol_days * 86_400_000 / timeframe_ms(timeframe))))
        self.warmup = 1  # see every bar: the feature buffer lives here
        self.default_size_pct = max_size_pct
        self._books: dict[str, _Book] = {}
        self._last_vol: dict[str, float] = {}  # per symbol: the latest per-bar volatility forecast
        for symbol in symbols:
            holder = holders[symbol]
            if weighting == "log_loss":
                weights = log_loss_weights({**holder.losses, **(val_log_loss or {})})
            else:
                weights = {m: 1.0 for m in holder.models}
            self._books[symbol] = _Book(holder, LivePredictor(holder, self.spec, self.vol_bars, self._fed), weights)
        # cross-asset features: each symbol's peer must be one of ours (its candles feed the features)
        self._peer_of = {s: peer_symbol(s) for s in symbols} if self.spec.needs_peer else {}
        lacking = sorted({p for p in self._peer_of.values() if p not in self._books})
        if lacking:
            raise ValueError(f"features {features!r} read the peer symbol's candles: add {', '.join(lacking)}"
                             f" to the strategy's symbols (it has {', '.join(symbols)})")
        self._replay: dict[str, History] = {}
        first = next(iter(holders[symbols[0]].models.values())).spec
        self.horizon = horizon or horizon_label(first.horizon, timeframe)
        # the decision layer (strategies.edge): expected net edge instead of the k-of-n vote
        self.edge = None if decision is None else EdgeLayer(
            edge_policy(decision, first.horizon),
            move_function(first.target, first.horizon, first.barrier_k, first.barrier_floor, first.cost),
            timeframe, self.horizon)

    # -- fast path ---------------------------------------------------------------------
    def precompute(self, symbol: str, history: History, batch_size: int = PREDICT_BATCH,
                   peer: History | None = None, streaming: bool = False) -> PredictionTable:
        """Predict every window of ``history`` in one batch per model; ``evaluate`` then looks up.
        ``peer``: the peer symbol's history (cross-asset features); ``streaming``: return while
        the table fills (``evaluate`` waits for each bar's row; see :mod:`strategies.table_fill`)."""
        book = self._books[symbol]
        table = predict_table(book.holder, self.spec, history, self.vol_bars, batch_size, peer=peer,
                              workers=table_workers(), streaming=streaming)
        book.table = TablePredictor(book.holder, table)
        log.info("ensemble_precomputed", strategy=self.name, symbol=symbol, rows=len(table.ts),
                 models=len(table.probs))
        return table

    # -- market data between bars ------------------------------------------------------------
    def market_streams(self) -> frozenset[str]:
        return self.spec.streams  # the ``full`` spec: book imbalance, spread, volume delta

    def on_market(self, event: OrderBook | Trade) -> None:
        """Books and trades feed the live buffer's microstructure inputs of the next bar."""
        book = self._books.get(event.symbol)
        if book is not None:
            book.live.on_market(event)

    # -- restart -------------------------------------------------------------------------
    def history_bars(self) -> int:
        """Settled features for a full buffer (every model's window and the volatility span)."""
        return self.spec.settle_bars + max(b.live.buffer.capacity for b in self._books.values())

    def warm(self, ctx: BarContext) -> None:
        """A bar of history only feeds the live feature buffer: no prediction is needed."""
        book = self._books.get(ctx.candle.symbol)
        if book is not None:
            book.predictor().warm(ctx.candle)

    def _fed(self, candle: Candle) -> None:
        """A candle a live buffer accepted also feeds the buffers whose cross-asset features read
        it as their peer."""
        for symbol, peer in self._peer_of.items():
            if peer == candle.symbol:
                self._books[symbol].live.on_peer_candle(candle)

    def evaluate(self, ctx: BarContext) -> Signal | None:
        book = self._books.get(ctx.candle.symbol)
        if book is None:
            return None
        got = book.predictor().predict(ctx.candle)
        if got is None:
            return None
        vol, window = got.vol, got.window
        self._last_vol[ctx.candle.symbol] = vol
        v = vote(got.probs, self.rule, book.weights)
        if self.edge is not None:
            e, annual_vol = self.edge.decide(ctx.candle.symbol, v.probability, vol, ctx.position)
            sig, acted = self.edge.signal(self, ctx, e, v.probability, annual_vol, v.describe()), e.trade
        else:
            annual = annualised_vol(vol, timeframe_ms(self.timeframe)) if np.isfinite(vol) else None
            d = decide(v, self.rule, self.policy, ctx.position, annual, self.exit_rule)
            sig, acted = self._to_signal(ctx, d, v.probability, v.votes), d.acted
        held = book.holder.held
        if held is not None and sig.direction is Direction.LONG and sig.size_pct > 0 and ctx.position <= 0:
            sig, acted = replace(sig, size_pct=0.0, reason=f"{sig.reason}; entries held: {held}"), False
        self._unexplained.pop(sig.symbol, None)
        if self.explain_mode == "all" or (self.explain_mode == "acted" and acted):
            if book.replaying and book.table is not None:  # explained in batches once it has ended
                self._deferred.append((sig, window, got.models, v.weights))
            else:  # the window getter reads this bar's buffer, valid until the next evaluate
                self._unexplained[sig.symbol] = (sig.signal_id, functools.cache(
                    functools.partial(self._explain, got, v.weights)))
        return sig

    def explain(self, signal: Signal) -> dict[str, float]:
        """Integrated-gradients (networks) / occlusion (GBM) attributions of the latest signal,
        weighted like the vote: top ``top_features`` features and their shares."""
        pending = self._unexplained.get(signal.symbol)
        if pending is None or pending[0] != signal.signal_id:
            return {}
        return pending[1]()

    def _explain(self, got: Prediction, weights: Mapping[str, float]) -> dict[str, float]:
        per = {n: attributions(m, np.asarray(got.window(m.window)), self.ig_steps)
               for n, m in got.models.items()}
        return top_shares(combine(per, weights), self.spec.columns, self.top_features)

    # -- finite replays (backtests) ------------------------------------------------------
    def prepare_replay(self, symbol: str, candles: Sequence[Candle]) -> None:
        """Batch-predict the replay's candles (:meth:`precompute` of the ones the Engine will
        accept); explanations then wait for :meth:`deferred_explanations`."""
        if symbol in self._books and candles:
            arrays = {k: np.array([getattr(c, k) for c in candles]) for k in OHLCV_KEYS}
            self._replay[symbol] = clean_history(arrays, symbol, self.timeframe)
            self._books[symbol].replaying = True
            for s in (symbol, *(s for s, p in self._peer_of.items() if p == symbol)):  # once its peer's are in
                peer = self._replay.get(self._peer_of[s]) if self._peer_of else None
                if s in self._replay and (peer is not None or not self._peer_of):
                    self.precompute(s, self._replay[s], peer=peer, streaming=True)

    def deferred_explanations(self) -> list[SignalExplained]:
        """The explanations :meth:`evaluate` held back, each model's windows in batches;
        the same attributions as :meth:`explain` would have given bar by bar."""
        for book in self._books.values():  # a fill's error fails the run, even if no bar read its row
            if book.table is not None and book.table.table.fill is not None:
                book.table.table.fill.result()
        pending, self._deferred = self._deferred, []
        if not pending:
            return []
        log.info("ensemble_explaining", strategy=self.name, signals=len(pending))
        per: list[dict[str, np.ndarray]] = [{} for _ in pending]
        uses: dict[int, tuple[Model, list[tuple[int, str]]]] = {}
        for i, (_, _, models, _) in enumerate(pending):
            for name, m in models.items():
                uses.setdefault(id(m), (m, []))[1].append((i, name))
        for m, used in uses.values():
            windows = [pending[i][1](m.window) for i, _ in used]
            for (i, name), a in zip(used, batch_attributions(m, windows, self.ig_steps), strict=True):
                per[i][name] = a
        out = []
        for (sig, _, models, weights), got in zip(pending, per, strict=True):
            shares = top_shares(combine({n: got[n] for n in models}, weights), self.spec.columns,
                                self.top_features)
            if shares:
                out.append(SignalExplained(sig.signal_id, sig.ts, shares))
        return out

    def _to_signal(self, ctx: BarContext, d: Decision, p: float, votes: dict[str, str]) -> Signal:
        return self.signal(
            ctx, d.direction, round(d.strength, 4), reason=d.reason, size_pct=round(d.size_pct, 4),
            probability=round(p, 6), confidence_low=round(d.confidence[0], 6),
            confidence_high=round(d.confidence[1], 6), horizon=self.horizon, risk_level=d.risk,
            votes=dict(votes),
        )

    # -- models --------------------------------------------------------------------------
    def model_holders(self) -> list[ModelHolder]:
        """Per symbol, the holder of the models it trades (the retrainer swaps in them)."""
        return [b.holder for b in self._books.values()]

    def holder(self, symbol: str) -> ModelHolder:
        return self._books[symbol].holder

    def last_vol(self, symbol: str) -> float:
        """The per-bar volatility forecast of ``symbol``'s latest evaluated bar (NaN before one)."""
        return self._last_vol.get(symbol, float("nan"))

    def book(self, symbol: str) -> _Book:
        """Per-symbol state (holder, live predictor, weights, table): read-only access for tools and tests."""
        return self._books[symbol]
