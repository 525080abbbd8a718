"""Configuration of the operator's cockpit: ``[api]`` (REST API and ``/ui``) and ``[telegram]`` (commands).

Both are ``Section``s embedded in ``bot.config.settings.Settings``. The API's bearer token is a
secret (``NEURALBOT_API__TOKEN`` or the file ``api__token`` in ``NEURALBOT_SECRETS_DIR``),
never read from the TOML. Off loopback a token is required, and it must look like one:
at least ``MIN_TOKEN_CHARS`` characters, no whitespace.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator

from bot.config.section import Section
from bot.config.ops import is_loopback

MIN_TOKEN_CHARS = 16


def check_token(token: SecretStr | None) -> SecretStr | None:
    """A bearer token worth the name: ``ValueError`` for an empty, blank, short or spaced one."""
    if token is None:
        return None
    value = token.get_secret_value()
    if not value.strip():
        raise ValueError("the token is empty or whitespace")
    if any(c.isspace() for c in value):
        raise ValueError("the token contains whitespace")
    if len(value) < MIN_TOKEN_CHARS:
        raise ValueError(f"the token is shorter than {MIN_TOKEN_CHARS} characters")
    return token


class ApiConfig(Section):
    enabled: bool = True
    host: str = "127.0.0.1"  # loopback by default; anything else requires ``token``
    port: int = Field(9109, ge=0, le=65535)  # 0: an ephemeral port (see port_file)
    token: SecretStr | None = None  # bearer token; required off loopback, optional on it
    port_file: Path | None = None  # write "host:port" here once listening (tests, scripts)
    cors_origins: tuple[str, ...] = ()  # origins allowed cross-origin requests; none by default
    max_failed_logins: int = Field(5, ge=1)  # per client address within login_window_s ...
    login_window_s: float = Field(300.0, gt=0)
    lockout_s: float = Field(300.0, gt=0)  # ... then every request from it gets 429 this long
    stream_heartbeat_s: float = Field(2.0, gt=0)  # live stream: status pushed at least this often

    @field_validator("token")
    @classmethod
    def _token_shape(cls, v: SecretStr | None) -> SecretStr | None:
        return check_token(v)

    @model_validator(mode="after")
    def _token_off_loopback(self) -> ApiConfig:
        if self.enabled and not is_loopback(self.host) and self.token is None:
            raise ValueError(
                f"api.host {self.host!r} is not loopback: set a token"
                " (NEURALBOT_API__TOKEN or the file api__token in NEURALBOT_SECRETS_DIR) or bind to 127.0.0.1"
            )
        return self

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [o for o in v if o != "*" and not o.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"expected http(s) origins, got {', '.join(bad)}")
        return v


class TelegramConfig(Section):
    """Commands from Telegram, by long polling ``getUpdates`` with the ``[notify]`` bot token."""

    commands: bool = False  # poll for /status, /halt, ... (needs notify.telegram_token)
    allowed_chat_ids: tuple[str, ...] = ()  # who may command; empty: notify.telegram_chat_id only
    poll_timeout_s: int = Field(25, ge=1, le=50)  # long-poll wait per getUpdates call
    confirm_s: float = Field(60.0, gt=0)  # /flatten must be confirmed within this
