"""Typed configuration: TOML file, overridden by ``NEURALBOT_*`` environment variables.

Priority (highest first): environment (``NEURALBOT_RISK__MAX_POSITION_PCT=5``),
secrets directory (``NEURALBOT_SECRETS_DIR``, one file per secret), the TOML file.
API credentials are secrets: they are read from the environment or the secrets
directory only, never from the TOML, and are never printed.

A bad configuration raises ``ConfigError`` naming every offending key path, the
bad value and what is expected; the CLI turns that into exit code 2. Rules that
span several fields are small named checks in ``CROSS_FIELD_CHECKS``
(:mod:`bot.config.checks`), run by ``load_settings`` (:mod:`bot.config.load`).
"""

from __future__ import annotations

import difflib
import os
from contextvars import ContextVar
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bot.config.cockpit import ApiConfig, TelegramConfig
from bot.config.section import Section, not_blank, section_default
from bot.core.errors import UserInputError
from bot.evaluation.compute import ComputeConfig
from bot.evaluation.schedule import WalkForwardConfig
from bot.config.search_space import HyperoptConfig
from bot.config.ops import DaemonConfig, HealthConfig, NotifyConfig, RetrainConfig
from bot.config.redaction import redact
from bot.core.timeframes import TIMEFRAME_MS
from risk.breakers import BREAKERS
from risk.limits import DEFAULT_BREAKERS
from strategies.catalog import KINDS
from strategies.models.spec import ModelSpec, TrainConfig, default_models

SECRET_KEYS = ("api_key", "api_secret")
# Secrets nested in sections; like the API keys they come only from the environment or secrets dir.
NESTED_SECRETS = (("health", "token"), ("notify", "telegram_token"), ("api", "token"))
SECRET_NAMES = frozenset({*SECRET_KEYS, *(p[1] for p in NESTED_SECRETS)})  # never echoed in errors
# the TOML file Settings() reads (set by bot.config.load.load_settings around the call)
TOML_PATH: ContextVar[Path | None] = ContextVar("toml_path", default=None)


class ConfigError(UserInputError):
    """Invalid configuration; ``problems`` are (key path, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str = "") -> None:
        self.problems = problems
        self.source = source
        super().__init__(self.render())

    def render(self) -> str:
        """One line per problem, each naming the source and the key."""
        where = self.source or "configuration"
        return "\n".join(f"{where}: {key}: {msg}" if key else f"{where}: {msg}"
                         for key, msg in self.problems)


# Keys that existed once: a config still setting one gets this instead of "unknown key".
RETIRED_KEYS = {
    ("exchange", "sandbox"): 'removed: mode selects the endpoints (mode = "sandbox" uses the'
                             " exchange's test endpoints, mode = \"live\" the real ones); delete the line",
}
MAX_EQUITY = 1e12  # quote currency; anything above is a typo, not an account



class ExchangeConfig(Section):
    name: str = "binance"
    http_url: str | None = None  # override REST base, e.g. the loopback exchange
    ws_url: str | None = None  # override websocket base
    fee_rate: float = Field(0.001, ge=0, le=0.05)
    timeout_ms: int = Field(10_000, ge=100)  # per request; a timed-out order is looked up, never re-sent
    paper_latency_ms: int = Field(0, ge=0)  # book-walking paper executor: order arrival delay
    # sandbox/live: also keep a STOP_LOSS_LIMIT sell on the exchange for each open position
    # (placed after the entry fill, moved with the trailing stop, re-armed at start-up)
    exchange_stops: bool = False
    # sandbox/live: the quote this portfolio may trade (plus what its own fills made or lost);
    # the rest of the account is left alone. None: the whole account is the bot's
    stake: float | None = Field(None, gt=0)


class DataConfig(Section):
    dir: Path = Path("../shared/data")
    source: Literal["files", "store"] = "files"  # where backtest/train/walkforward read candles


class StoreConfig(Section):
    path: Path = Path("var/neuralbot.sqlite")
    portfolio: str = Field("default", min_length=1)


class BacktestConfig(Section):
    symbols: list[str] = Field(default_factory=lambda: ["BTC/USDT"], min_length=1)
    timeframe: str = "1h"
    start: date | None = None
    end: date | None = None
    initial_equity: float = Field(10_000.0, gt=0, le=MAX_EQUITY)
    slippage_bps: float = Field(5.0, ge=0, le=1000)

    @field_validator("timeframe")
    @classmethod
    def _known_timeframe(cls, v: str) -> str:
        return _timeframe(v)


class RiskConfig(Section):
    max_position_pct: float = Field(10.0, gt=0, le=100)
    max_open_positions: int = Field(5, ge=1)
    max_heat_pct: float = Field(20.0, gt=0, le=100)
    min_strength: float = Field(65.0, ge=0, le=100)
    stop_loss_pct: float = Field(6.0, gt=0, lt=100)
    take_profit_pct: float | None = Field(None, gt=0, le=1000)  # None: no take-profit order
    trailing_stop_pct: float | None = Field(None, gt=0, lt=100)
    risk_per_trade_pct: float | None = Field(None, gt=0, le=100)
    # -- execution engineer (issue #6) --
    max_symbol_exposure_pct: float = Field(10.0, gt=0, le=100)  # all held in one symbol, % of equity
    max_orders_per_minute: int | None = Field(30, ge=1)  # new entries per rolling minute; None = off
    daily_loss_limit_pct: float | None = Field(5.0, gt=0, lt=100)  # -> REDUCING until next UTC day
    max_drawdown_pct: float | None = Field(15.0, gt=0, lt=100)  # from the equity peak -> HALTED
    atr_multiple: float | None = Field(None, gt=0, le=100)  # stop = entry - k * ATR (when an ATR is known)
    atr_period: int = Field(14, ge=2)
    slippage_margin_bps: float = Field(50.0, ge=0, le=1000)  # caps assume fills this much worse
    max_strategy_failures: int = Field(3, ge=1)  # exceptions in a row that disable a strategy
    # circuit breakers (risk.breakers plug-ins), asked in this order; the first that locks decides
    breakers: list[str] = Field(default_factory=lambda: list(DEFAULT_BREAKERS))

    @field_validator("breakers")
    @classmethod
    def _known_breakers(cls, v: list[str]) -> list[str]:
        for name in v:
            if name not in BREAKERS:
                match = difflib.get_close_matches(name, list(BREAKERS), n=1)
                hint = f"; did you mean {match[0]!r}?" if match else ""
                raise ValueError(f"unknown breaker {name!r}{hint} (known: {', '.join(BREAKERS)})")
        if len(set(v)) != len(v):
            raise ValueError("a breaker is listed twice")
        return v


class StrategyConfig(Section):
    name: str = Field(min_length=1)
    kind: str  # a kind registered in strategies.catalog.KINDS
    symbols: list[str] | None = Field(None, min_length=1)  # default: [backtest].symbols
    timeframe: str | None = None  # default: [backtest].timeframe
    enabled: bool = True
    params: dict[str, Any] = Field(default_factory=dict)  # checked by the strategy kind

    @field_validator("timeframe")
    @classmethod
    def _known_timeframe(cls, v: str | None) -> str | None:
        return None if v is None else _timeframe(v)

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, v: str) -> str:
        if v not in KINDS:
            raise ValueError(f"unknown strategy kind; expected one of {', '.join(sorted(KINDS))}")
        return v


class FeedConfig(Section):
    source: Literal["replay", "exchange"] = "replay"  # exchange = ccxt.pro websockets
    replay_speed: float = Field(0.0, ge=0, le=1e9)  # bars per second when replaying; 0 = as fast as possible
    order_book: bool = False  # stream L2 books (watch_order_book) for every symbol
    order_book_depth: int = Field(20, ge=1, le=5000)
    trades: bool = False  # stream public trades (watch_trades) for every symbol
    backfill_limit: int = Field(1000, ge=1, le=1000)  # candles per REST page when backfilling
    # a backfilled bar older than this many bars (at most one) never opens a position
    backfill_grace_bars: float = Field(0.25, ge=0, le=1)
    reconnect_initial_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    reconnect_jitter: float = Field(0.5, ge=0, le=1)
    stale_multiple: float = Field(5.0, gt=1)  # no message for this many intervals -> reconnect
    max_clock_skew_ms: int | None = Field(1000, ge=0)  # refuse to trade beyond this skew


class TrainSection(Section):
    """``[train]``: the history the ``[[models]]`` are trained on and where they are saved."""

    symbol: str = "BTC/USDT"
    timeframe: str = "1h"
    start: str | None = "2017-01-01"  # first day of training history (inclusive)
    end: str | None = "2022-01-01"  # first day not used (exclusive)
    models_dir: Path = Path("models")  # model registry root
    threads: int = Field(1, ge=1)  # torch threads; small models train fastest on 1

    @field_validator("timeframe")
    @classmethod
    def _known_timeframe(cls, v: str) -> str:
        return _timeframe(v)


class LoggingConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["auto", "json", "console"] = "auto"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NEURALBOT_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    mode: Literal["paper", "sandbox", "live"] = "paper"
    i_understand_live_trading: bool = False
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None
    exchange: ExchangeConfig = section_default(ExchangeConfig)
    data: DataConfig = section_default(DataConfig)
    store: StoreConfig = section_default(StoreConfig)
    backtest: BacktestConfig = section_default(BacktestConfig)
    risk: RiskConfig = section_default(RiskConfig)
    feed: FeedConfig = section_default(FeedConfig)
    # lambdas, not list: inspect.signature(list) parses its text signature with tokenize (~3 ms)
    strategies: list[StrategyConfig] = Field(default_factory=lambda: [])
    models: list[ModelSpec] = Field(default_factory=lambda: [])  # [[models]]; empty = the default five
    train: TrainSection = section_default(TrainSection)
    walkforward: WalkForwardConfig = section_default(WalkForwardConfig)
    hyperopt: HyperoptConfig = section_default(HyperoptConfig)
    compute: ComputeConfig = section_default(ComputeConfig)
    logging: LoggingConfig = section_default(LoggingConfig)
    health: HealthConfig = section_default(HealthConfig)
    notify: NotifyConfig = section_default(NotifyConfig)
    retrain: RetrainConfig = section_default(RetrainConfig)
    daemon: DaemonConfig = section_default(DaemonConfig)
    api: ApiConfig = section_default(ApiConfig)
    telegram: TelegramConfig = section_default(TelegramConfig)

    _secrets_not_blank = field_validator("api_key", "api_secret")(not_blank)

    @field_validator("i_understand_live_trading", mode="before")
    @classmethod
    def _exactly_true(cls, v: Any) -> bool:
        # a TOML boolean, or from the environment exactly "true"/"false": never "yes", "1", "on"
        if isinstance(v, bool):
            return v
        if v in ("true", "false"):
            return v == "true"
        raise ValueError('expected the boolean true or false (from the environment: exactly "true")')

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        secrets_dir = os.environ.get("NEURALBOT_SECRETS_DIR")
        if secrets_dir:

            # one file per secret: api_key, api_secret; nested ones as api__token, health__token
            sources.append(NestedSecretsSettingsSource(file_secret_settings, secrets_dir=secrets_dir,
                                                       secrets_nested_delimiter="__", env_prefix=""))
        path = TOML_PATH.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    def redacted(self) -> dict[str, Any]:
        """The configuration as plain data with secrets masked (safe to log or store).

        ``SecretStr`` fields dump masked; URLs lose their credentials (userinfo, query) and
        webhook URLs, whose path is the credential, keep only scheme and host.
        """
        return redact(self.model_dump(mode="json"))


def _timeframe(v: str) -> str:
    if v not in TIMEFRAME_MS:
        raise ValueError(f"unknown timeframe; expected one of {', '.join(TIMEFRAME_MS)}")
    return v


def round_trip_cost(s: Settings) -> float:
    """Entry + exit cost as configured: 2 x (fee + slippage + half the walk-forward spread)."""
    from strategies.training.labels import (
        round_trip_cost as cost,  # numpy: loading a config never imports it
    )

    return cost(s.exchange.fee_rate, s.backtest.slippage_bps, s.walkforward.spread_bps)


def costed_models(s: Settings) -> tuple[ModelSpec, ...]:
    """``[[models]]`` (default: the five defaults) with the configured round-trip cost as the label
    cost of every model that does not set ``cost`` itself."""
    cost = round_trip_cost(s)
    return tuple(m if "cost" in m.model_fields_set else m.model_copy(update={"cost": cost})
                 for m in (tuple(s.models) or default_models()))


def train_config(s: Settings) -> TrainConfig:
    """What the training pipeline needs, from ``[data]``, ``[exchange]``, ``[train]``, ``[[models]]``."""
    return TrainConfig(
        data_dir=s.data.dir,
        data_source=s.data.source,
        store_path=s.store.path,
        exchange=s.exchange.name,
        models=costed_models(s),
        **s.train.model_dump(),
    )


def date_to_ms(d: date | None) -> int | None:
    if d is None:
        return None
    return int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp() * 1000)
