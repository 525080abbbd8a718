"""The base of every configuration section: frozen, unknown keys are errors, floats finite."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, SecretStr


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def not_blank(v: SecretStr | None) -> SecretStr | None:
    """Field validator: a secret set to nothing (empty file, ``VAR=``) is a mistake, not a credential."""
    if v is not None and not v.get_secret_value().strip():
        raise ValueError("is empty or blank; set the real value or unset it")
    return v
