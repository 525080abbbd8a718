"""The neural ensemble strategy: n trained models vote on every closed bar.

Live path (paper/live/backtest alike): the strategy keeps one
:class:`~bot.feature_buffer.FeatureBuffer` per symbol and feeds it every closed
candle it is shown (``warmup = 1``, so the Engine shows it every accepted bar);
each model predicts P(up) from the latest window, the votes are counted
(:mod:`strategies.ensemble`) and the decision becomes a Signal with strength,
confidence interval, horizon, risk level, size and votes. Feature attributions
(:mod:`strategies.explain`; for acted signals by default) come from :meth:`explain`,
which the Engine calls after it has acted, so explaining never delays an order.

Fast path (evaluation): :meth:`NeuralEnsemble.precompute` computes the features
of a whole history and every model's predictions for all of its windows in one
batch per model; the Engine then replays the candles and ``evaluate`` only looks
predictions up. Features are causal and computed by the same engine as the live
buffer, so when the replay covers the same candles as the history, both paths
give the same signals (tested).

With a ``decision`` table the vote is replaced by the decision layer
(:mod:`strategies.edge`, :mod:`strategies.decision`): the mean probability and the
volatility forecast become an expected net edge over the label horizon, traded
with hysteresis, holding times, a no-trade band and a volatility-targeted size.

Models come from the registry: ``<models_dir>/<SYMBOL>_<timeframe>/<name>/``
(see :mod:`strategies.registry`), or are handed in as ``{name: Model}``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import torch

from bot.events import Candle, Direction, OrderBook, Signal, SignalExplained, Trade, timeframe_ms
from bot.feature_buffer import FeatureBuffer
from strategies.base import BarContext, Strategy
from strategies.cross import peer_symbol
from strategies.edge import EdgeLayer, edge_policy, move_function
from strategies.ensemble import Decision, decide, log_loss_weights, vote, voting_setup
from strategies.explain import attributions, batch_attributions, combine, top_shares
from strategies.features import FeatureSpec, compute_features, get_spec
from strategies.history import OHLCV_KEYS, History, clean_history
from strategies.labels import trailing_vol
from strategies.models.base import PREDICT_BATCH, Model
from strategies.registry import load_model, model_dir, read_meta
from strategies.signals import annualised_vol
from strategies.windows import Windows, valid_ends

log = structlog.get_logger(__name__)

DEFAULT_MODELS = ("lstm", "bilstm", "cnn_lstm", "transformer", "gbm")


def set_torch_threads(threads: int) -> None:
    """Small models predict latency-bound: on a shared 2-core box, 2 intra-op threads
    predicted 5-10x slower than 1 (batches of 512 windows, the five default models)."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)


def horizon_label(bars: int, timeframe: str) -> str:
    """``24`` bars of ``1h`` -> ``"1d"``; ``4`` of ``1h`` -> ``"4h"``; ``1`` of ``1w`` -> ``"1w"``."""
    ms = bars * timeframe_ms(timeframe)
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


@dataclass(frozen=True, slots=True)
class PredictionTable:
    """Batch predictions of one symbol's history, keyed by bar open time."""

    ts: np.ndarray  # [N] open times
    probs: dict[str, np.ndarray]  # model -> [N] P(up), NaN where no full window
    vol: np.ndarray  # [N] per-bar volatility forecast (model or trailing), NaN until known
    features: np.ndarray  # [N, F] raw features (windows for explanations)
    index: dict[int, int] = field(default_factory=dict)

    def row(self, ts: int) -> int | None:
        return self.index.get(ts)


# a signal to explain after the replay: (signal, window getter, the models then, vote weights)
_Deferred = tuple[Signal, Callable[[int], np.ndarray], dict[str, Model], Mapping[str, float]]


@dataclass(slots=True)
class _Book:
    """Per-symbol state: models, live feature buffer, optional precomputed table."""

    models: dict[str, Model]
    vol_model: Model | None
    buffer: FeatureBuffer
    weights: dict[str, float]
    table: PredictionTable | None = None
    replaying: bool = False  # the table covers a finite replay: explain after it, in batches


class NeuralEnsemble(Strategy):
    """k-of-n voting ensemble of trained models (see module docstring)."""

    def __init__(
        self, name: str, symbols: tuple[str, ...], timeframe: str,
        models: Sequence[str] | Mapping[str, Model] = DEFAULT_MODELS,
        models_dir: str = "models", features: str = "default",
        vote_k: int | None = None, threshold: float = 0.55, weighting: str = "equal",
        val_log_loss: Mapping[str, float] | None = None,
        horizon: str = "", vol_model: str | Model | None = None, vol_days: float = 7.0,
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
        names = list(models)
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
        self._held: dict[str, str] = {}  # symbol -> why no new position may open (expired models)
        self._last_vol: dict[str, float] = {}  # per symbol: the latest per-bar volatility forecast
        for symbol in symbols:
            loaded, losses = self._load(symbol, models, models_dir)
            vm = self._load_one(symbol, vol_model, models_dir) if isinstance(vol_model, str) and vol_model \
                else (vol_model if isinstance(vol_model, Model) else None)
            if weighting == "log_loss":
                weights = log_loss_weights({**losses, **(val_log_loss or {})})
            else:
                weights = {m: 1.0 for m in loaded}
            longest = max(m.window for m in loaded.values())
            buf = FeatureBuffer(symbol, timeframe, self.spec, n_steps=longest,
                                capacity=max(longest, self.vol_bars + 1))
            self._books[symbol] = _Book(loaded, vm, buf, weights)
        # cross-asset features: each symbol's peer must be one of ours (its candles feed the features)
        self._peer_of = {s: peer_symbol(s) for s in symbols} if self.spec.needs_peer else {}
        lacking = sorted({p for p in self._peer_of.values() if p not in self._books})
        if lacking:
            raise ValueError(f"features {features!r} read the peer symbol's candles: add {', '.join(lacking)}"
                             f" to the strategy's symbols (it has {', '.join(symbols)})")
        self._replay: dict[str, History] = {}
        first = next(iter(next(iter(self._books.values())).models.values())).spec
        self.horizon = horizon or horizon_label(first.horizon, timeframe)
        # the decision layer (strategies.edge): expected net edge instead of the k-of-n vote
        self.edge = None if decision is None else EdgeLayer(
            edge_policy(decision, first.horizon),
            move_function(first.target, first.horizon, first.barrier_k, first.barrier_floor, first.cost),
            timeframe, self.horizon)

    # -- loading ---------------------------------------------------------------------
    def _load_one(self, symbol: str, name: str, models_dir: str) -> Model:
        path = model_dir(models_dir, symbol, self.timeframe, name)
        if not (Path(path) / "meta.json").exists():
            raise ValueError(f"model {name!r} not found at {path} (train it, or fix models_dir)")
        return load_model(path, self.spec)

    def _load(self, symbol: str, models: Sequence[str] | Mapping[str, Model],
              models_dir: str) -> tuple[dict[str, Model], dict[str, float]]:
        if isinstance(models, Mapping):
            loaded = dict(models)
            return loaded, {}
        loaded, losses = {}, {}
        for name in models:
            loaded[name] = self._load_one(symbol, name, models_dir)
            meta = read_meta(model_dir(models_dir, symbol, self.timeframe, name))
            losses[name] = float((meta.get("metrics", {}).get("val") or {}).get("log_loss") or "nan")
        for name, m in loaded.items():
            if m.task != "classification":
                raise ValueError(f"model {name!r} is a {m.task} model; the ensemble needs P(up) classifiers")
        return loaded, losses

    # -- fast path ---------------------------------------------------------------------
    def precompute(self, symbol: str, history: History, batch_size: int = PREDICT_BATCH,
                   peer: History | None = None) -> PredictionTable:
        """Predict every window of ``history`` in one batch per model; ``evaluate`` then looks up.
        ``peer``: the peer symbol's history (cross-asset features)."""
        book = self._books[symbol]
        feats = compute_features(history.arrays, self.spec, peer=None if peer is None else peer.arrays)
        ts = np.asarray(history.arrays["ts"], dtype=np.int64)
        probs: dict[str, np.ndarray] = {}
        for name, m in book.models.items():
            probs[name] = self._batch_predict(m, feats, batch_size)
        if book.vol_model is not None:
            vol = self._batch_predict(book.vol_model, feats, batch_size)
        else:
            vol = trailing_vol(history.arrays["close"], self.vol_bars)
        table = PredictionTable(ts, probs, vol, feats, {int(t): i for i, t in enumerate(ts.tolist())})
        book.table = table
        log.info("ensemble_precomputed", strategy=self.name, symbol=symbol, rows=len(ts),
                 models=len(probs))
        return table

    @staticmethod
    def _batch_predict(model: Model, feats: np.ndarray, batch_size: int) -> np.ndarray:
        out = np.full(len(feats), np.nan)
        ends = valid_ends(feats, None, model.window)
        if len(ends):
            w = Windows(feats, ends, np.full(len(ends), np.nan, dtype=np.float32), model.window)
            out[ends] = model.predict_windows(w, batch_size)
        return out

    # -- evaluation ----------------------------------------------------------------------
    def _inputs(self, book: _Book, ctx: BarContext) -> tuple[dict[str, float], float, Any] | None:
        """Per-model P(up), per-bar vol and a window getter, or ``None`` when not ready."""
        c = ctx.candle
        if book.table is not None:
            row = book.table.row(c.ts)
            if row is None:
                return None
            t = book.table
            probs = {n: float(p[row]) for n, p in t.probs.items()}
            if not all(np.isfinite(v) for v in probs.values()):
                return None

            def window(w: int, t: PredictionTable = t, row: int = row) -> np.ndarray:
                return t.features[row - w + 1 : row + 1]

            return probs, float(t.vol[row]), window
        if not self._ingest(book, c):
            return None
        probs = {}
        for n, m in book.models.items():
            x = book.buffer.latest_window(m.window)
            if x is None:
                return None
            probs[n] = float(m.predict(x)[0])
        vol = np.nan
        if book.vol_model is not None:
            x = book.buffer.latest_window(book.vol_model.window)
            vol = float(book.vol_model.predict(x)[0]) if x is not None else np.nan
        else:
            closes = book.buffer.candles.window(self.vol_bars + 1).close
            vol = float(trailing_vol(closes, self.vol_bars)[-1])

        def live_window(w: int) -> np.ndarray:
            return book.buffer.window(w)

        return probs, vol, live_window

    # -- market data between bars ------------------------------------------------------------
    def market_streams(self) -> frozenset[str]:
        return self.spec.streams  # the ``full`` spec: book imbalance, spread, volume delta

    def on_market(self, event: OrderBook | Trade) -> None:
        """Books and trades feed the live buffer's microstructure inputs of the next bar."""
        book = self._books.get(event.symbol)
        if book is None:
            return
        if isinstance(event, OrderBook):
            book.buffer.on_order_book(event)
        else:
            book.buffer.on_trade_event(event)

    # -- restart -------------------------------------------------------------------------
    def history_bars(self) -> int:
        """Settled features for a full buffer (every model's window and the volatility span)."""
        return self.spec.settle_bars + max(b.buffer.capacity for b in self._books.values())

    def warm(self, ctx: BarContext) -> None:
        """A bar of history only feeds the live feature buffer: no prediction is needed."""
        book = self._books.get(ctx.candle.symbol)
        if book is not None and book.table is None:
            self._ingest(book, ctx.candle)

    def _ingest(self, book: _Book, candle: Candle) -> bool:
        """Feed a closed candle to its symbol's buffer and, once accepted, to the buffers whose
        cross-asset features read it as their peer."""
        if book.buffer.on_candle(candle) is not None:
            return False
        for symbol, peer in self._peer_of.items():
            if peer == candle.symbol:
                self._books[symbol].buffer.on_peer_candle(candle)
        return True

    def evaluate(self, ctx: BarContext) -> Signal | None:
        book = self._books.get(ctx.candle.symbol)
        if book is None:
            return None
        got = self._inputs(book, ctx)
        if got is None:
            return None
        probs, vol, window = got
        self._last_vol[ctx.candle.symbol] = vol
        v = vote(probs, self.rule, book.weights)
        if self.edge is not None:
            e, annual_vol = self.edge.decide(ctx.candle.symbol, v.probability, vol, ctx.position)
            sig, acted = self.edge.signal(self, ctx, e, v.probability, annual_vol, v.describe()), e.trade
        else:
            annual = annualised_vol(vol, timeframe_ms(self.timeframe)) if np.isfinite(vol) else None
            d = decide(v, self.rule, self.policy, ctx.position, annual, self.exit_rule)
            sig, acted = self._to_signal(ctx, d, v.probability, v.votes), d.acted
        held = self._held.get(ctx.candle.symbol)
        if held is not None and sig.direction is Direction.LONG and sig.size_pct > 0 and ctx.position <= 0:
            sig, acted = replace(sig, size_pct=0.0, reason=f"{sig.reason}; entries held: {held}"), False
        self._unexplained.pop(sig.symbol, None)
        if self.explain_mode == "all" or (self.explain_mode == "acted" and acted):
            if book.replaying and book.table is not None:  # explained in batches once it has ended
                self._deferred.append((sig, window, dict(book.models), v.weights))
            else:  # the window getter reads this bar's buffer, valid until the next evaluate
                self._unexplained[sig.symbol] = (sig.signal_id, functools.cache(
                    functools.partial(self._explain, book, window, v.weights)))
        return sig

    def explain(self, signal: Signal) -> dict[str, float]:
        """Integrated-gradients (networks) / occlusion (GBM) attributions of the latest signal,
        weighted like the vote: top ``top_features`` features and their shares."""
        pending = self._unexplained.get(signal.symbol)
        if pending is None or pending[0] != signal.signal_id:
            return {}
        return pending[1]()

    def _explain(self, book: _Book, window: Any, weights: Mapping[str, float]) -> dict[str, float]:
        per = {n: attributions(m, np.asarray(window(m.window)), self.ig_steps)
               for n, m in book.models.items()}
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
                    self.precompute(s, self._replay[s], peer=peer)

    def deferred_explanations(self) -> list[SignalExplained]:
        """The explanations :meth:`evaluate` held back, each model's windows in batches;
        the same attributions as :meth:`explain` would have given bar by bar."""
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

    # -- hot swap ------------------------------------------------------------------------
    def swap_model(self, name: str, model: Model, symbol: str | None = None) -> int:
        """Replace ensemble member ``name`` (every symbol holding it, or ``symbol``'s); between bars.

        The replacement must be a classifier whose window fits the live feature buffer.
        A precomputed table (backtests) is dropped: later bars predict live. Returns how
        many symbols' books took the new model.
        """
        if model.task != "classification":
            raise ValueError(f"model {name!r} is a {model.task} model; the ensemble needs P(up) classifiers")
        books = [b for sym, b in self._books.items() if name in b.models and symbol in (None, sym)]
        for book in books:
            if model.window > book.buffer.n_steps:
                raise ValueError(f"model {name!r} needs a {model.window}-bar window; the live buffer"
                                 f" keeps {book.buffer.n_steps}")
        for book in books:
            book.models[name] = model
            book.table = None
        log.info("ensemble_model_swapped", strategy=self.name, model=name, symbols=len(books))
        return len(books)

    def hold_entries(self, symbol: str, reason: str | None) -> None:
        """Open no new position on ``symbol`` while ``reason`` stands (its models are stale);
        exits, and the Engine's stops, work as before. ``None`` lifts the hold."""
        if reason is None:
            self._held.pop(symbol, None)
        elif symbol in self._books:
            self._held[symbol] = reason
            log.warning("ensemble_entries_held", strategy=self.name, symbol=symbol, reason=reason)

    def last_vol(self, symbol: str) -> float:
        """The per-bar volatility forecast of ``symbol``'s latest evaluated bar (NaN before one)."""
        return self._last_vol.get(symbol, float("nan"))

    def book(self, symbol: str) -> _Book:
        """Per-symbol state (models, buffer, table): read-only access for tools and tests."""
        return self._books[symbol]
