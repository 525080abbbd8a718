"""Typed configuration: TOML file, overridden by ``NEURALBOT_*`` environment variables.

Priority (highest first): environment (``NEURALBOT_RISK__MAX_POSITION_PCT=5``),
secrets directory (``NEURALBOT_SECRETS_DIR``, one file per secret), the TOML file.
API credentials are secrets: they are read from the environment or the secrets
directory only, never from the TOML, and are never printed.

A bad configuration raises ``ConfigError`` naming every offending key path, the
bad value and what is expected; the CLI turns that into exit code 2. Rules that
span several fields are small named checks in ``CROSS_FIELD_CHECKS``
(:mod:`bot.config_checks`).
"""

from __future__ import annotations

import difflib
import os
import tomllib
from contextvars import ContextVar
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
    TomlConfigSettingsSource,
)

from bot.cockpit_config import ApiConfig, TelegramConfig
from bot.config_checks import CROSS_FIELD_CHECKS, exchange_modes_require_keys
from bot.config_section import Section, not_blank
from bot.errors import UserInputError
from bot.evaluation.compute import ComputeConfig
from bot.evaluation.schedule import WalkForwardConfig
from bot.evaluation.search_space import HyperoptConfig
from bot.ops_config import DaemonConfig, HealthConfig, NotifyConfig, RetrainConfig
from bot.redaction import redact
from bot.timeframes import TIMEFRAME_MS
from strategies.model_config import ModelSpec, TrainConfig, default_models

SECRET_KEYS = ("api_key", "api_secret")
# Secrets nested in sections; like the API keys they come only from the environment or secrets dir.
NESTED_SECRETS = (("health", "token"), ("notify", "telegram_token"), ("api", "token"))
SECRET_NAMES = frozenset({*SECRET_KEYS, *(p[1] for p in NESTED_SECRETS)})  # never echoed in errors
_toml_path: ContextVar[Path | None] = ContextVar("_toml_path", default=None)


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
        from strategies.catalog import KINDS

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
    exchange: ExchangeConfig = Field(default_factory=ExchangeConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    feed: FeedConfig = Field(default_factory=FeedConfig)
    strategies: list[StrategyConfig] = Field(default_factory=list)
    models: list[ModelSpec] = Field(default_factory=list)  # [[models]]; empty = the default five
    train: TrainSection = Field(default_factory=TrainSection)
    walkforward: WalkForwardConfig = Field(default_factory=WalkForwardConfig)
    hyperopt: HyperoptConfig = Field(default_factory=HyperoptConfig)
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    daemon: DaemonConfig = Field(default_factory=DaemonConfig)
    api: ApiConfig = Field(default_factory=ApiConfig)
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)

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
            from pydantic_settings import NestedSecretsSettingsSource

            # one file per secret: api_key, api_secret; nested ones as api__token, health__token
            sources.append(NestedSecretsSettingsSource(file_secret_settings, secrets_dir=secrets_dir,
                                                       secrets_nested_delimiter="__", env_prefix=""))
        path = _toml_path.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    def redacted(self) -> dict[str, Any]:
        """The configuration as plain data with secrets masked (safe to log or store).

        ``SecretStr`` fields dump masked; URLs lose their credentials (userinfo, query) and
        webhook URLs, whose path is the credential, keep only scheme and host.
        """
        return redact(self.model_dump(mode="json"))


# -- loading ----------------------------------------------------------------------------


def load_settings(path: Path | str | None = None, *, credentials: bool = True) -> Settings:
    """Load, validate and cross-check the configuration, or raise ``ConfigError``.

    ``credentials=False``: a read-only command (``status``) that needs no API keys.
    """
    if path is None:
        path = os.environ.get("NEURALBOT_CONFIG")
    if path is None:
        raise ConfigError(
            [("", "no configuration file: pass --config FILE or set NEURALBOT_CONFIG")]
        )
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise ConfigError([("", f"config file not found: {path}")], source)
    raw = _read_toml(path)
    top = {k.lower() for k in raw}
    leaked = [(k,) for k in SECRET_KEYS if k in top]
    leaked += [p for p in NESTED_SECRETS
               if isinstance(raw.get(p[0]), dict) and p[1] in {k.lower() for k in raw[p[0]]}]
    if leaked:
        raise ConfigError(
            [
                (".".join(p), "secrets are never read from the TOML file; remove it and set"
                 f" NEURALBOT_{'__'.join(p).upper()} or put it in NEURALBOT_SECRETS_DIR")
                for p in leaked
            ],
            source,
        )
    opt_in = [v for k, v in raw.items() if k.lower() == "i_understand_live_trading"]
    if any(not isinstance(v, bool) for v in opt_in):
        raise ConfigError([("i_understand_live_trading", f"got {opt_in[0]!r}: the opt-in is only the"
                            " TOML boolean true (no quotes)")], source)
    token = _toml_path.set(path)
    try:
        settings = Settings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc, raw), source) from None
    except SettingsError as exc:
        raise ConfigError([("", _describe_source_error(exc))], source) from None
    finally:
        _toml_path.reset(token)
    checks = [c for c in CROSS_FIELD_CHECKS if credentials or c is not exchange_modes_require_keys]
    problems = [p for check in checks if (p := check(settings)) is not None]
    if problems:
        raise ConfigError(problems, source)
    return settings


def _read_toml(path: Path) -> dict[str, Any]:
    source = str(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise ConfigError([("", f"line {line}: byte 0x{exc.object[exc.start]:02x} is not UTF-8;"
                                " save the file as UTF-8")], source) from None
    except OSError as exc:
        raise ConfigError([("", f"cannot read: {exc.strerror}")], source) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([("", f"not valid TOML: {exc}")], source) from None


def _describe_source_error(exc: SettingsError) -> str:
    """pydantic-settings' 'error parsing value for field "risk" from source ...' as a fix."""
    import re

    m = re.search(r'field "([^"]+)" from source "(\w+)"', str(exc))
    field, src = (m.group(1), m.group(2)) if m else ("?", "")
    if src.startswith("Secrets"):
        return f"secrets dir file {field!r} is not valid JSON; write the value as JSON"
    var = f"NEURALBOT_{field.upper()}"
    return (f"{var} is not valid JSON; give a JSON value (e.g. {var}='{{\"key\": 1}}')"
            f" or set one key: {var}__<KEY>=<value>")


def _describe(exc: ValidationError, raw: dict[str, Any]) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors():
        loc = err["loc"]
        key = _key_path(loc)
        if err["type"] == "extra_forbidden" and tuple(loc) in RETIRED_KEYS:
            problems.append((key, RETIRED_KEYS[tuple(loc)]))  # type: ignore[index]
            continue
        if err["type"] == "extra_forbidden":
            msg = f"unknown key {key!r}"
            hint = _suggest(loc, raw)
            if hint:
                msg += f"; did you mean {hint!r}?"
            problems.append((key, msg))
            continue
        value = err.get("input")
        secret = bool(SECRET_NAMES.intersection(str(part) for part in loc))
        shown = "(missing)" if err["type"] == "missing" else "(hidden)" if secret else repr(value)
        var = _env_var_for(loc)
        problems.append((key, f"got {shown}{f' from {var}' if var else ''}: {err['msg']}"))
    return problems


def _env_var_for(loc: tuple[Any, ...]) -> str | None:
    """The ``NEURALBOT_*`` variable that set the value at ``loc``, if one did."""
    names = [str(p).upper() for p in loc if not isinstance(p, int)]
    for n in range(len(names), 0, -1):
        var = "NEURALBOT_" + "__".join(names[:n])
        if var in os.environ:
            return var
    return None


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _suggest(loc: tuple[Any, ...], raw: dict[str, Any]) -> str | None:
    model: Any = Settings
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        ann = field.annotation
        inner = getattr(ann, "__args__", (ann,))[0] if getattr(ann, "__origin__", None) is list else ann
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return None
        model = inner
    match = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return match[0] if match else None


def _timeframe(v: str) -> str:
    if v not in TIMEFRAME_MS:
        raise ValueError(f"unknown timeframe; expected one of {', '.join(TIMEFRAME_MS)}")
    return v


def round_trip_cost(s: Settings) -> float:
    """Entry + exit cost as configured: 2 x (fee + slippage + half the walk-forward spread)."""
    from strategies.labels import round_trip_cost as cost

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
