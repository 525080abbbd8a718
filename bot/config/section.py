"""The base of every configuration section: frozen, unknown keys are errors, floats finite."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def section_default(cls: type[Section]) -> Any:
    """The field of a section left out of the file: ``cls()``, as ``Field(default_factory=cls)`` gives,
    from a plain function, since pydantic reads every default factory's ``inspect.signature`` (does it
    take the validated data?), and a model class's is built from all its fields (the config is loaded
    by every command, ``status`` included: bench/bench_cli.py)."""
    return Field(default_factory=lambda: cls())


def not_blank(v: SecretStr | None) -> SecretStr | None:
    """Field validator: a secret set to nothing (empty file, ``VAR=``) is a mistake, not a credential."""
    if v is not None and not v.get_secret_value().strip():
        raise ValueError("is empty or blank; set the real value or unset it")
    return v
