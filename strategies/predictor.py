"""How trained models reach a strategy: a model holder, and predictors that read it.

As qlib splits a model's signal (computed now, from features) from a cached signal (a
table computed ahead), both predictors here answer one question through
:class:`Predictor`: a closed bar's per-model P(up), its volatility forecast, and the
feature window behind them (for explanations).

* :class:`ModelHolder`: one strategy's models of one series (symbol, timeframe); the only
  place they change: the retrainer swaps a member in (``swap``) or holds the series from
  opening positions (``hold``). Predictors read it on every bar, so a swap takes effect
  on the next one.
* :class:`LivePredictor`: predicts from a causal feature buffer fed bar by bar (paper,
  live, any replay).
* :class:`TablePredictor`: looks a bar up in a :class:`PredictionTable` that
  :func:`predict_table` batch-computed over a finite history (backtests); it stands
  only while the holder's models are those it was computed with.

Features are computed by the same engine in both, so over the same candles both give
the same predictions (``tests/integration/test_backtest_parity.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

import numpy as np
import structlog

from bot.core.events import Candle, OrderBook, Trade
from strategies.features.buffer import FeatureBuffer
from strategies.features.compute import FeatureSpec, compute_features
from strategies.features.history import History
from strategies.training.labels import trailing_vol
from strategies.models.base import PREDICT_BATCH, Model
from strategies.table_fill import TableFill

log = structlog.get_logger(__name__)

Window = Callable[[int], np.ndarray]  # n -> the last n feature rows up to the predicted bar


def require_classifier(name: str, model: Model) -> None:
    if model.task != "classification":
        raise ValueError(f"model {name!r} is a {model.task} model; the ensemble needs P(up) classifiers")


class ModelHolder:
    """The models ``owner`` (a strategy's name) trades ``symbol`` / ``timeframe`` with.

    ``losses``: each member's validation log loss (registry metadata; vote weights);
    ``vol_model``: an optional volatility forecaster.
    """

    def __init__(self, owner: str, symbol: str, timeframe: str, models: Mapping[str, Model], *,
                 vol_model: Model | None = None, losses: Mapping[str, float] | None = None) -> None:
        for name, m in models.items():
            require_classifier(name, m)
        self.owner, self.symbol, self.timeframe = owner, symbol, timeframe
        self.vol_model = vol_model
        self.losses = MappingProxyType(dict(losses or {}))
        self._models = dict(models)
        #: the longest window the live buffer keeps: a swapped-in model may not need more
        self.max_window = max((m.window for m in models.values()), default=0)
        self._version = 0
        self._held: str | None = None

    @property
    def models(self) -> Mapping[str, Model]:
        """The members now (read-only: only :meth:`swap` changes them)."""
        return MappingProxyType(self._models)

    @property
    def version(self) -> int:
        """Bumped by every swap: a precomputed table of an older version no longer stands."""
        return self._version

    @property
    def held(self) -> str | None:
        """Why no new position may open on this series (its models expired), or ``None``."""
        return self._held

    def swap(self, name: str, model: Model) -> bool:
        """Replace member ``name`` (between bars); ``False`` when it is not a member.

        The replacement must be a classifier whose window fits the live buffer; a rejected
        swap changes nothing.
        """
        require_classifier(name, model)
        if name not in self._models:
            return False
        if model.window > self.max_window:
            raise ValueError(f"model {name!r} needs a {model.window}-bar window; the live buffer"
                             f" keeps {self.max_window}")
        self._models[name] = model
        self._version += 1
        log.info("ensemble_model_swapped", strategy=self.owner, symbol=self.symbol, model=name)
        return True

    def hold(self, reason: str | None) -> None:
        """Open no new position while ``reason`` stands (exits and stops work as before);
        ``None`` lifts the hold."""
        self._held = reason
        if reason is not None:
            log.warning("ensemble_entries_held", strategy=self.owner, symbol=self.symbol, reason=reason)


@dataclass(frozen=True, slots=True)
class Prediction:
    probs: dict[str, float]  # model -> P(up)
    vol: float  # per-bar volatility forecast (model or trailing); NaN when unknown
    window: Window  # the feature rows behind it (valid until the next bar)
    models: Mapping[str, Model]  # the members that predicted (explanations)


class Predictor(Protocol):
    """A closed bar's predictions, or ``None`` while not enough is known."""

    def warm(self, candle: Candle) -> None:
        """A bar of history before trading (a restart): absorbed, nothing predicted."""

    def predict(self, candle: Candle) -> Prediction | None: ...


class LivePredictor:
    """Predictions from a causal feature buffer, every member on its latest window."""

    def __init__(self, holder: ModelHolder, spec: FeatureSpec, vol_bars: int,
                 on_accepted: Callable[[Candle], None] | None = None) -> None:
        self.holder, self.vol_bars = holder, vol_bars
        self.buffer = FeatureBuffer(holder.symbol, holder.timeframe, spec, n_steps=holder.max_window,
                                    capacity=max(holder.max_window, vol_bars + 1))
        self._on_accepted = on_accepted  # e.g. feeding this bar to the series reading it as their peer

    def _accept(self, candle: Candle) -> bool:
        if self.buffer.on_candle(candle) is not None:
            return False
        if self._on_accepted is not None:
            self._on_accepted(candle)
        return True

    def warm(self, candle: Candle) -> None:
        self._accept(candle)

    def on_peer_candle(self, candle: Candle) -> None:
        """A closed bar of the peer symbol (cross-asset features)."""
        self.buffer.on_peer_candle(candle)

    def on_market(self, event: OrderBook | Trade) -> None:
        """Books and trades feed the buffer's microstructure inputs of the next bar."""
        if isinstance(event, OrderBook):
            self.buffer.on_order_book(event)
        else:
            self.buffer.on_trade_event(event)

    def predict(self, candle: Candle) -> Prediction | None:
        buf, models = self.buffer, dict(self.holder.models)
        if not self._accept(candle):
            return None
        probs = {}
        for n, m in models.items():
            x = buf.latest_window(m.window)
            if x is None:
                return None
            probs[n] = m.predict_one(x)
        vm = self.holder.vol_model
        if vm is not None:
            x = buf.latest_window(vm.window)
            vol = vm.predict_one(x) if x is not None else np.nan
        else:
            closes = buf.candles.window(self.vol_bars + 1).close
            vol = float(trailing_vol(closes, self.vol_bars)[-1])
        return Prediction(probs, vol, buf.window, models)


@dataclass(frozen=True, slots=True)
class PredictionTable:
    """Batch predictions of one symbol's history, keyed by bar open time."""

    ts: np.ndarray  # [N] open times
    probs: dict[str, np.ndarray]  # model -> [N] P(up), NaN where no full window
    vol: np.ndarray  # [N] per-bar volatility forecast (model or trailing), NaN until known
    features: np.ndarray  # [N, F] raw features (windows for explanations)
    index: dict[int, int] = field(default_factory=dict)
    fill: TableFill | None = None  # still filling (a streaming table): rows final once ``fill.wait`` returns

    def row(self, ts: int) -> int | None:
        return self.index.get(ts)


def predict_table(holder: ModelHolder, spec: FeatureSpec, history: History, vol_bars: int,
                  batch_size: int = PREDICT_BATCH, peer: History | None = None,
                  workers: int = 1, streaming: bool = False) -> PredictionTable:
    """Every window of ``history`` predicted by every member (:class:`~strategies.table_fill.TableFill`);
    ``peer``: the peer symbol's history (cross-asset features). ``streaming``: return before
    the workers are done; the table's ``fill`` says which rows are final (a replay's table:
    :class:`TablePredictor` waits for each row it reads)."""
    feats = compute_features(history.arrays, spec, peer=None if peer is None else peer.arrays)
    ts = np.asarray(history.arrays["ts"], dtype=np.int64)
    vm = holder.vol_model
    fill = TableFill({**holder.models, **({_VOL: vm} if vm is not None else {})}, feats, batch_size, workers)
    got = dict(fill.out if streaming else fill.result())
    vol = got.pop(_VOL) if vm is not None else trailing_vol(history.arrays["close"], vol_bars)
    return PredictionTable(ts, got, vol, feats, {int(t): i for i, t in enumerate(ts.tolist())},
                           fill if streaming else None)


_VOL = "\0vol"  # the volatility model's key among the members (no member name has a NUL)


class TablePredictor:
    """Predictions looked up in a precomputed table (the fast path of finite replays)."""

    def __init__(self, holder: ModelHolder, table: PredictionTable) -> None:
        self.holder, self.table = holder, table
        self._version = holder.version

    @property
    def current(self) -> bool:
        """Whether the holder still has the models the table was computed with."""
        return self.holder.version == self._version

    def warm(self, candle: Candle) -> None:
        """The table already covers the history."""

    def predict(self, candle: Candle) -> Prediction | None:
        t = self.table
        row = t.row(candle.ts)
        if row is None:
            return None
        if t.fill is not None:
            t.fill.wait(row)
        probs = {n: float(p[row]) for n, p in t.probs.items()}
        if not all(map(math.isfinite, probs.values())):
            return None

        def window(w: int, row: int = row) -> np.ndarray:
            return t.features[row - w + 1 : row + 1]

        return Prediction(probs, float(t.vol[row]), window, dict(self.holder.models))
