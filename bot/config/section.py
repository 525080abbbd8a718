"""The base of every configuration section: frozen, unknown keys are errors, floats finite."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def section_default(cls: type[Section]) -> Any:
    """``Field(default_factory=cls)`` (a section the file leaves out is ``cls()``), the factory a plain
    function: pydantic reads every factory's ``inspect.signature`` (does it take the validated data?),
    and a model class's is built from all its fields, ~0.25 ms a section each time ``Settings`` is
    defined, i.e. by every command that loads a config (``status``: bench/bench_cli.py)."""
    return Field(default_factory=lambda: cls())


def not_blank(v: SecretStr | None) -> SecretStr | None:
    """Field validator: a secret set to nothing (empty file, ``VAR=``) is a mistake, not a credential."""
    if v is not None and not v.get_secret_value().strip():
        raise ValueError("is empty or blank; set the real value or unset it")
    return v
