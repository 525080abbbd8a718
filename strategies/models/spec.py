"""Model and training configuration: what the TOML's ``[[models]]`` entries hold.

:class:`ModelSpec` is a frozen pydantic model; unknown keys are errors. A
``preset`` supplies defaults that explicitly given keys override, e.g.::

    [[models]]
    name = "lstm_article"
    kind = "lstm"
    preset = "article"      # LSTM128 -> drop .3 -> LSTM64 -> drop .3 -> dense32 -> sigmoid, 100 steps
    epochs = 20

Defaults are small enough that the five default models train on 2 CPU cores in
a few minutes on BTC/USDT 1h 2017-2021.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ModelKind = Literal["lstm", "cnn_lstm", "transformer", "gbm"]

PRESETS: dict[str, dict[str, Any]] = {
    # The reference article's Keras model: LSTM(128, seq) -> Dropout(.3) -> LSTM(64)
    # -> Dropout(.3) -> Dense(32, relu) -> Dense(1, sigmoid), over 100 time steps.
    "article": {
        "kind": "lstm", "window": 100, "hidden": (128, 64), "dropout": 0.3, "dense": (32,),
        "epochs": 50, "patience": 10, "batch_size": 64, "lr": 1e-3, "stride": 1,
    },
    "small": {"hidden": (32,), "dense": (16,), "window": 48, "dropout": 0.1},
    "bilstm": {"kind": "lstm", "hidden": (24, 16), "bidirectional": True, "dense": (16,), "stride": 3},
    "cnn_lstm": {"kind": "cnn_lstm", "conv_channels": (16, 16), "hidden": (32,), "dense": (16,)},
    "cnn_lstm_article": {
        "kind": "cnn_lstm", "window": 100, "conv_channels": (64, 64), "hidden": (128,),
        "dense": (32,), "dropout": 0.3, "epochs": 50, "patience": 10, "stride": 1,
    },
    "transformer": {"kind": "transformer", "d_model": 32, "n_heads": 2, "n_layers": 1, "ff_dim": 64,
                    "stride": 3},
    "transformer_large": {
        "kind": "transformer", "window": 100, "d_model": 128, "n_heads": 8, "n_layers": 4,
        "ff_dim": 256, "dropout": 0.2, "epochs": 50, "patience": 10, "stride": 1,
    },
    "gbm": {"kind": "gbm"},
    # Volatility regressor: any architecture with a regression head; 7 days of 1h bars.
    "volatility": {"target": "realized_vol", "horizon": 168, "calibration": "none",
                   "class_balance": False},
}


class ModelSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    name: str
    kind: ModelKind
    preset: str | None = None
    # target
    target: Literal["direction", "log_return", "realized_vol", "triple_barrier", "net_return",
                    "meta_trend"] = "direction"
    horizon: int = Field(1, ge=1, le=168)
    # cost-aware labels (strategies.training.labels): barriers at barrier_k x forecast vol over the
    # horizon, never closer than barrier_floor x cost (the round-trip cost, a fraction)
    barrier_k: float = Field(1.0, gt=0)
    barrier_floor: float = Field(2.0, ge=0)
    cost: float = Field(0.0032, ge=0)
    # meta_trend: the primary trend rule (SMA meta_fast > SMA meta_slow) whose trades are labelled
    meta_fast: int = Field(20, ge=1)
    meta_slow: int = Field(50, ge=2)
    # average-uniqueness weights of overlapping labels; default: on for multi-bar labels
    sample_weights: Literal["uniqueness", "none"] | None = None
    # inputs
    window: int = Field(48, ge=2)
    features: str = "default"
    # architecture
    hidden: tuple[int, ...] = (32,)
    dense: tuple[int, ...] = (16,)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    bidirectional: bool = False
    conv_channels: tuple[int, ...] = (16, 16)
    kernel_size: int = Field(3, ge=1)
    d_model: int = 32
    n_heads: int = 4
    n_layers: int = 2
    ff_dim: int = 64
    # optimisation
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(256, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    patience: int = Field(3, ge=1)
    lr_patience: int = Field(1, ge=0)
    lr_factor: float = Field(0.5, gt=0, lt=1)
    grad_clip: float = 1.0
    stride: int = Field(2, ge=1)  # subsample training windows (every stride-th bar)
    max_train_windows: int | None = None
    class_balance: bool = True
    augment_noise: float = Field(0.0, ge=0)  # gaussian noise std (normalised units)
    augment_shift: int = Field(0, ge=0)  # random time shift of up to this many steps
    augment_scale: float = Field(0.0, ge=0)  # magnitude scaling std (x ~ N(1, s))
    calibration: Literal["temperature", "isotonic", "none"] = "temperature"
    # what early stopping and the calibration are chosen by on the validation span: the log loss,
    # or the net-of-cost return per unit of risk of the decision layer (strategies.training.selection)
    select_by: Literal["log_loss", "net_return"] = "log_loss"
    split: tuple[float, float, float] = (0.7, 0.15, 0.15)
    purge: int | None = None  # embargo bars after each label's real span between splits (default 0)
    seed: int = 0
    # gradient boosting
    gbm_max_iter: int = 150
    gbm_learning_rate: float = 0.1
    gbm_max_leaf_nodes: int = 15
    gbm_l2: float = 1.0
    gbm_lags: tuple[int, ...] = (0, 1, 2, 3, 5, 8, 12, 24)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("preset"):
            name = data["preset"]
            if name not in PRESETS:
                raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
            merged = dict(PRESETS[name])
            merged.update(data)
            return merged
        return data

    @model_validator(mode="after")
    def _check(self) -> ModelSpec:
        if abs(sum(self.split) - 1.0) > 1e-6 or min(self.split) <= 0:
            raise ValueError("split fractions must be positive and sum to 1")
        if self.kind == "transformer" and self.d_model % self.n_heads:
            raise ValueError("d_model must be divisible by n_heads")
        if not self.hidden:
            raise ValueError("hidden must list at least one layer size")
        if self.select_by == "net_return" and self.target not in ("direction", "triple_barrier", "net_return"):
            raise ValueError(f"select_by = 'net_return' trades the forecasts as P(up); target {self.target!r} "
                             "is not one (use select_by = 'log_loss')")
        return self

    @property
    def task(self) -> str:
        return "regression" if self.target in ("log_return", "realized_vol") else "classification"

    @property
    def weighted(self) -> bool:
        """Whether training windows carry average-uniqueness weights."""
        return self.sample_weights == "uniqueness" or (self.sample_weights is None and self.horizon > 1)

    @property
    def purge_bars(self) -> int:
        return max(self.purge if self.purge is not None else self.horizon, self.horizon)


def default_models() -> tuple[ModelSpec, ...]:
    """The default ensemble: 2 LSTM variants, CNN-LSTM, Transformer, gradient boosting."""
    return (
        ModelSpec(name="lstm", kind="lstm", preset="small"),
        ModelSpec(name="bilstm", kind="lstm", preset="bilstm"),
        ModelSpec(name="cnn_lstm", kind="cnn_lstm", preset="cnn_lstm"),
        ModelSpec(name="transformer", kind="transformer", preset="transformer"),
        ModelSpec(name="gbm", kind="gbm", preset="gbm"),
    )


class TrainConfig(BaseModel):
    """What ``neuralbot train`` needs; the lead's config embeds ``models`` as ``[[models]]``."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    data_dir: Path = Path("../shared/data")
    data_source: Literal["files", "store"] = "files"  # the CSVs in data_dir, or the SQLite store
    store_path: Path = Path("var/neuralbot.sqlite")
    exchange: str = "binance"
    symbol: str = "BTC/USDT"
    timeframe: str = "1h"
    start: str | None = "2017-01-01"
    end: str | None = "2022-01-01"
    models_dir: Path = Path("models")
    # Small recurrent models are latency-bound: on 2 cores extra intra-op threads
    # mostly add synchronisation (and contention with the running bot).
    threads: int = Field(1, ge=1)
    models: tuple[ModelSpec, ...] = Field(default_factory=default_models)
