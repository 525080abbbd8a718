"""Feature specification and the one engine that computes it, per candle or per history.

A :class:`FeatureSpec` is an ordered tuple of :class:`FeatureDef` (kind + params);
its :meth:`FeatureSpec.hash` is a stable SHA-256 of the names, kinds, params and
``FEATURES_VERSION``, stored with every model so a model is never fed features it
was not trained on.

:class:`FeatureEngine` holds the incremental state of every indicator and turns
one accepted candle into one feature row. :func:`compute_features` runs the same
engine over a whole (already validated) history: batch == stream by construction.

Order-book and trade features (imbalance, spread, volume delta) are neutral (0)
when absent. Historical OHLCV files carry neither, so :data:`DEFAULT_SPEC` leaves
them out (a model trained on constant zeros would see out-of-distribution inputs
live); :data:`FULL_SPEC` includes them for models trained on recorded books.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from strategies.features import indicators as ind
from strategies.features.mtf import HigherTimeframe

FEATURES_VERSION = 1

Params = tuple[tuple[str, float | int], ...]

_FACTORIES: dict[str, Callable[..., ind.Indicator]] = {
    "log_return": ind.LogReturn,
    "atr": ind.ATR,
    "bb_width": ind.BollingerWidth,
    "rsi": ind.RSI,
    "macd": ind.MACD,
    "realized_vol": ind.RealizedVol,
    "volume_z": ind.VolumeZ,
    "vwap_dist": ind.VWAPDistance,
    "volume_delta": ind.VolumeDelta,
    "book_imbalance": ind.BookImbalance,
    "spread": ind.Spread,
    "hour": ind.HourOfDay,
    "dow": ind.DayOfWeek,
    "htf": lambda **p: _htf(**p),  # higher-timeframe context (strategies.features.mtf), imported on use
    "peer": lambda **p: _peer(**p),  # cross-asset context (strategies.features.cross), imported on use
}
_OUTPUTS = {"htf": ("ret", "trend", "pos"),
            "peer": ("ret_1", "ret_24", "vol_24", "ratio_ret_24", "ratio_dev_168")}


STREAM_OF = {"book_imbalance": "order_book", "spread": "order_book", "volume_delta": "trades"}
RECURSIVE_KINDS = frozenset({"atr", "rsi", "macd"})  # Wilder / EMA smoothing: infinite memory
SETTLE_MULTIPLE = 24  # Wilder (1 - 1/n)^(24 n) < 4e-11 for every n >= 2; EMAs fade faster


def _htf(**params: float | int) -> ind.Indicator:

    return HigherTimeframe(**params)  # type: ignore[arg-type]


def _peer(**params: float | int) -> ind.Indicator:
    from strategies.features.cross import PeerContext

    return PeerContext(**params)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class FeatureDef:
    """One indicator: ``name`` prefixes its output columns (``macd_line`` ...)."""

    name: str
    kind: str
    params: Params = ()

    def __post_init__(self) -> None:
        if self.kind not in _FACTORIES:
            raise ValueError(f"unknown feature kind {self.kind!r}; known: {sorted(_FACTORIES)}")

    def build(self) -> ind.Indicator:
        return _FACTORIES[self.kind](**dict(self.params))

    @property
    def columns(self) -> tuple[str, ...]:
        outs = _OUTPUTS.get(self.kind) or _FACTORIES[self.kind].outputs  # type: ignore[attr-defined]
        return (self.name,) if not outs else tuple(f"{self.name}_{o}" for o in outs)

    @property
    def lookback(self) -> int:
        """Candles needed before the first finite value (a safe upper bound)."""
        p = dict(self.params)
        if self.kind == "htf":  # bars + 1 complete higher bars, plus one bucket to align
            return int(p["minutes"]) // 60 * (int(p.get("bars", 10)) + 2)
        if self.kind == "peer":  # the ratio's mean, one bar behind the peer
            return max(int(p.get("bars", 24)), int(p.get("ratio_bars", 168))) + 2
        if self.kind == "macd":
            return int(p["slow"]) + int(p["signal"])
        for key in ("bars", "period"):
            if key in p:
                return int(p[key]) + 1
        return 1


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    name: str
    features: tuple[FeatureDef, ...]
    version: int = FEATURES_VERSION
    _columns: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cols = tuple(c for f in self.features for c in f.columns)
        if len(set(cols)) != len(cols):
            raise ValueError(f"duplicate feature columns in spec {self.name!r}")
        object.__setattr__(self, "_columns", cols)

    @property
    def columns(self) -> tuple[str, ...]:
        return self._columns

    @property
    def n_features(self) -> int:
        return len(self._columns)

    @property
    def max_lookback(self) -> int:
        return max(f.lookback for f in self.features)

    @property
    def streams(self) -> frozenset[str]:
        """The market streams besides candles these features read: ``order_book``, ``trades``."""
        return frozenset(STREAM_OF[f.kind] for f in self.features if f.kind in STREAM_OF)

    @property
    def needs_peer(self) -> bool:
        """Whether these features read a second symbol's candles (:mod:`strategies.features.cross`)."""
        return any(f.kind == "peer" for f in self.features)

    @property
    def settle_bars(self) -> int:
        """Candles after which every feature no longer depends on where the history began:
        recursive (exponentially smoothed) indicators need ``SETTLE_MULTIPLE`` x their lookback
        for the start to fade below float precision; the others their lookback."""
        return max(f.lookback * (SETTLE_MULTIPLE if f.kind in RECURSIVE_KINDS else 1) for f in self.features)

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "features": [
                {"name": f.name, "kind": f.kind, "params": dict(f.params)} for f in self.features
            ],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> FeatureSpec:
        feats = tuple(
            FeatureDef(str(f["name"]), str(f["kind"]), tuple(sorted(dict(f["params"]).items())))
            for f in d["features"]  # type: ignore[union-attr]
        )
        return cls(str(d["name"]), feats, int(d.get("version", FEATURES_VERSION)))  # type: ignore[arg-type]

    def hash(self) -> str:
        """Stable hash of what the features ARE (the spec's display name is not part of it)."""
        body = {"version": self.version, "features": self.to_dict()["features"]}
        blob = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _f(name: str, kind: str, **params: float | int) -> FeatureDef:
    return FeatureDef(name, kind, tuple(sorted(params.items())))


_OHLCV_FEATURES: tuple[FeatureDef, ...] = (
    _f("ret_1", "log_return", bars=1),
    _f("ret_4", "log_return", bars=4),
    _f("ret_24", "log_return", bars=24),
    _f("ret_168", "log_return", bars=168),
    _f("atr_14", "atr", period=14),
    _f("bb_width_20", "bb_width", period=20, k=2.0),
    _f("rsi_14", "rsi", period=14),
    _f("macd", "macd", fast=12, slow=26, signal=9),
    _f("rv_24", "realized_vol", period=24),
    _f("volume_z_24", "volume_z", period=24),
    _f("vwap_dist_24", "vwap_dist", period=24),
    _f("hour", "hour"),
    _f("dow", "dow"),
)
_MICRO_FEATURES: tuple[FeatureDef, ...] = (
    _f("volume_delta", "volume_delta"),
    _f("book_imbalance", "book_imbalance"),
    _f("spread_bps", "spread"),
)

# Multi-timeframe context (hourly streams only): 4H / 1D / 1W bars from the confluence aggregator.
_HTF_FEATURES: tuple[FeatureDef, ...] = (
    _f("h4", "htf", minutes=240, bars=12),
    _f("d1", "htf", minutes=1440, bars=10),
    _f("w1", "htf", minutes=10080, bars=4),
)

# Cross-asset context: the peer symbol's returns and volatility, and the ratio to it (ETH/BTC).
_PEER_FEATURES: tuple[FeatureDef, ...] = (_f("peer", "peer", bars=24, ratio_bars=168, max_stale=3),)

DEFAULT_SPEC = FeatureSpec("default", _OHLCV_FEATURES)
FULL_SPEC = FeatureSpec("full", _OHLCV_FEATURES + _MICRO_FEATURES)
MTF_SPEC = FeatureSpec("mtf", _OHLCV_FEATURES + _HTF_FEATURES)
CROSS_SPEC = FeatureSpec("cross", _OHLCV_FEATURES + _PEER_FEATURES)
SPECS: dict[str, FeatureSpec] = {"default": DEFAULT_SPEC, "full": FULL_SPEC, "mtf": MTF_SPEC,
                                 "cross": CROSS_SPEC}


def get_spec(name: str) -> FeatureSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise ValueError(f"unknown feature spec {name!r}; known: {sorted(SPECS)}") from None


class FeatureEngine:
    """Incremental state of every feature of ``spec``; feed accepted candles in time order."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self._inds = [f.build() for f in spec.features]
        self._peer_inds = [i for f, i in zip(spec.features, self._inds, strict=True) if f.kind == "peer"]
        self._ctx = ind.Ctx()
        self.count = 0

    def update_peer(self, ts: int, open_: float, high: float, low: float, close: float) -> None:
        """One accepted candle of the peer symbol (cross-asset features; ignored without them).
        It is read from the first own bar that opens after it has closed."""
        for indicator in self._peer_inds:
            indicator.push_peer(ts, open_, high, low, close)  # type: ignore[attr-defined]

    def update(
        self,
        ts: int,
        open_: float,
        high: float,
        low: float,
        close: float,
        volume: float,
        volume_delta: float = math.nan,
        imbalance: float = math.nan,
        spread_bps: float = math.nan,
    ) -> list[float]:
        """Consume one validated candle; return its feature row (len ``n_features``)."""
        ctx = self._ctx
        prev = ctx.close
        ctx.prev_close = prev
        ctx.ts, ctx.open, ctx.high, ctx.low, ctx.close, ctx.volume = (
            ts, open_, high, low, close, volume,
        )
        if math.isnan(prev):
            ctx.r1 = math.nan
            ctx.tr = high - low
        else:
            ctx.r1 = math.log(close / prev)
            ctx.tr = max(high - low, abs(high - prev), abs(low - prev))
        ctx.volume_delta, ctx.imbalance, ctx.spread_bps = volume_delta, imbalance, spread_bps
        self.count += 1
        row: list[float] = []
        for indicator in self._inds:
            row.extend(indicator.step(ctx))
        return row


def compute_features(
    arrays: Mapping[str, np.ndarray],
    spec: FeatureSpec = DEFAULT_SPEC,
    extras: Mapping[str, np.ndarray] | None = None,
    peer: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Feature matrix ``[n_rows, n_features]`` (float64) of a validated history.

    ``arrays`` has ``ts, open, high, low, close, volume`` (see
    :func:`strategies.features.history.clean_history`); ``extras`` optionally carries
    per-bar ``volume_delta``, ``imbalance``, ``spread_bps`` (NaN = absent); ``peer``
    is the peer symbol's validated history, required by a spec with cross-asset
    features (each peer candle is handed to the engine before the own candle of its
    open time, as a live feed may: the engine reads it one bar later either way).
    """
    if spec.needs_peer and peer is None:
        raise ValueError(f"feature spec {spec.name!r} reads the peer symbol's candles (BTC for other coins,"
                         " ETH for BTC) and none were given: this path does not load them (walkforward,"
                         " evaluate, train, the retrain job and the neural strategy do); use"
                         " features = \"default\" here")
    n = len(arrays["ts"])
    out = np.empty((n, spec.n_features), dtype=np.float64)
    engine = FeatureEngine(spec)
    cols = [np.asarray(arrays[k]).tolist() for k in ("ts", "open", "high", "low", "close", "volume")]
    nan_col = [math.nan] * n
    ex = extras or {}
    ext = [np.asarray(ex[k]).tolist() if k in ex else nan_col for k in
           ("volume_delta", "imbalance", "spread_bps")]
    peer_rows = iter(zip(*(np.asarray(peer[k]).tolist() for k in ("ts", "open", "high", "low", "close")),
                         strict=True)) if spec.needs_peer and peer is not None else iter(())
    nxt = next(peer_rows, None)
    for i, vals in enumerate(zip(*cols, *ext, strict=True)):
        while nxt is not None and nxt[0] <= vals[0]:
            engine.update_peer(int(nxt[0]), *nxt[1:])
            nxt = next(peer_rows, None)
        out[i] = engine.update(int(vals[0]), *vals[1:])
    return out
