"""Loading the configuration: read the TOML, validate every section, run the cross-field checks.

Every problem is reported at once as one ``ConfigError`` (exit code 2 at the CLI), each naming the
key path, the bad value and what is expected, with a "did you mean" for a misspelt key.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError

from bot.config.settings import (
    NESTED_SECRETS,
    RETIRED_KEYS,
    SECRET_KEYS,
    SECRET_NAMES,
    TOML_PATH,
    ConfigError,
    Settings,
)
from bot.config.checks import CROSS_FIELD_CHECKS, exchange_modes_require_keys


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
    token = TOML_PATH.set(path)
    try:
        settings = Settings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc, raw), source) from None
    except SettingsError as exc:
        raise ConfigError([("", _describe_source_error(exc))], source) from None
    finally:
        TOML_PATH.reset(token)
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
