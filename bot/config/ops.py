"""Configuration sections of the operations layer: ``[health]``, ``[notify]``, ``[retrain]``, ``[daemon]``.

They are ``Section``s (frozen, unknown keys are errors) embedded in ``bot.config.settings.Settings``.
Tokens (health bearer token, Telegram bot token) are ``SecretStr``: set them from
the environment (``NEURALBOT_HEALTH__TOKEN``, ``NEURALBOT_NOTIFY__TELEGRAM_TOKEN``)
or the secrets directory rather than the TOML file.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from bot.config.section import Section, not_blank

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
MIN_PUBLIC_TOKEN_LEN = 16  # a token guarding a non-loopback bind


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HealthConfig(Section):
    enabled: bool = True
    host: str = "127.0.0.1"  # loopback by default; anything else requires ``token``
    port: int = Field(9108, ge=0, le=65535)  # 0: an ephemeral port (see port_file)
    token: SecretStr | None = None  # bearer token; required when host is not loopback
    port_file: Path | None = None  # write "host:port" here once listening (tests, scripts)
    stale_after_s: float = Field(0.0, ge=0)  # feed older than this -> /health "degraded"; 0 = 3 bars
    events_window_s: float = Field(60.0, gt=0)  # window of the events/s gauge

    _token_not_blank = field_validator("token")(not_blank)

    @model_validator(mode="after")
    def _token_off_loopback(self) -> HealthConfig:
        if self.enabled and (problem := public_bind_problem(self.host, self.token)):
            raise ValueError(problem)
        return self


def public_bind_problem(host: str, token: SecretStr | None) -> str | None:
    """Why ``token`` cannot guard a health server on ``host`` (None: it can)."""
    if is_loopback(host):
        return None
    value = "" if token is None else token.get_secret_value().strip()
    if len(value) < MIN_PUBLIC_TOKEN_LEN:
        return (f"health.token: host {host!r} is not loopback: set a token of at least"
                f" {MIN_PUBLIC_TOKEN_LEN} characters (NEURALBOT_HEALTH__TOKEN) or bind to 127.0.0.1")
    return None


NotifyKind = Literal["fill", "stop", "state", "error", "retrain"]


class NotifyConfig(Section):
    webhook_url: str | None = None  # generic JSON webhook: POST {"kind","title","fields",...}
    telegram_base_url: str = "https://api.telegram.org"
    telegram_token: SecretStr | None = None
    _token_not_blank = field_validator("telegram_token")(not_blank)
    telegram_chat_id: str | None = None
    events: tuple[NotifyKind, ...] = ("fill", "stop", "state", "error", "retrain")
    queue_size: int = Field(1000, ge=1)  # bounded; when full new messages are dropped and counted
    max_attempts: int = Field(6, ge=1)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)
    timeout_s: float = Field(10.0, gt=0)

    @field_validator("webhook_url", "telegram_base_url")
    @classmethod
    def _http_url(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return v

    @model_validator(mode="after")
    def _telegram_pair(self) -> NotifyConfig:
        if (self.telegram_token is None) != (self.telegram_chat_id is None):
            raise ValueError("telegram needs both telegram_token and telegram_chat_id")
        return self

    @property
    def enabled(self) -> bool:
        return self.webhook_url is not None or self.telegram_token is not None


class RetrainConfig(Section):
    enabled: bool = False
    models_dir: Path = Path("models")  # registry root; every series the strategies trade is retrained
    scheduled: bool = True  # retrain at every [walkforward] retrain_every boundary (false: triggers only)
    accuracy_drop_pct: float = Field(10.0, gt=0, lt=100)  # relative drop of rolling accuracy
    accuracy_window: int = Field(200, ge=10)  # resolved predictions in the rolling accuracy
    train_bars: int = Field(8760, ge=500)  # history used to fit a candidate
    eval_bars: int = Field(720, ge=50)  # most recent bars, held out, to compare candidate vs running
    min_improvement: float = Field(0.0, ge=0)  # candidate must beat the running score by this
    max_model_age_days: float = Field(30.0, gt=0)  # older: retrain forced; still no better one: no entries
    check_interval_s: float = Field(60.0, gt=0)  # how often triggers are evaluated
    min_interval_hours: float = Field(6.0, ge=0)  # no new attempt sooner than this after the last one
    threads: int = Field(1, ge=1)  # torch threads in the training process
    timeout_s: float = Field(3600.0, gt=0)  # a training process running longer is abandoned


ShutdownMode = Literal["leave_stops", "cancel_orders"]


class DaemonConfig(Section):
    # On SIGTERM/SIGINT: "leave_stops" cancels pending entries but leaves protective
    # stop / take-profit orders resting on the exchange; "cancel_orders" cancels all.
    shutdown: ShutdownMode = "leave_stops"
    warmup_bars: int = Field(500, ge=0)  # at least this many closed bars warm each series at start
    max_warmup_bars: int = Field(50_000, ge=0)  # at most this many (strategies may ask for more)
    backfill: bool = True  # fetch missing candles over REST at start (exchange feed)
    check_clock_skew: bool = True  # refuse to trade when the local clock disagrees with the exchange
    flush_interval_s: float = Field(1.0, gt=0)  # store flush cadence while running
    state_file: Path | None = None  # heartbeat JSON for `neuralbot status`; default <store>.daemon.json
    heartbeat_s: float = Field(5.0, gt=0)
    shutdown_timeout_s: float = Field(20.0, gt=0)


def state_file_for(settings: Any) -> Path:
    """Where the daemon writes its state file (``[daemon] state_file``, else next to the store)."""
    configured = settings.daemon.state_file
    return Path(configured) if configured else Path(f"{settings.store.path}.daemon.json")
