"""``[hyperopt]``: what a search may change, how it scores, and where its study lives.

The space names configuration keys by dotted path; list entries (``strategies``,
``models``) are addressed by their ``name``::

    [hyperopt.space]
    "walkforward.long_above" = { low = 0.50, high = 0.60 }
    "risk.stop_loss_pct" = { low = 2.0, high = 10.0, log = true }
    "strategies.ma_cross.params.slow" = { low = 30, high = 120, step = 10 }
    "models.lstm.hidden" = { choices = [16, 32, 64] }

A range whose bounds (and step) are integers is sampled as an integer. Every key
is checked against the configuration when it is loaded, so a typo is a config
error with a suggestion, not a trial that fails later.
"""

from __future__ import annotations

import copy
import difflib
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from bot.config.section import Section

OBJECTIVES = ("sharpe", "sortino", "calmar", "total_return", "sharpe_turnover", "path_sharpe")


class ParamSpec(Section):
    low: float | None = None
    high: float | None = None
    step: float | None = Field(None, gt=0)
    log: bool = False
    choices: list[Any] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> ParamSpec:
        ranged = self.low is not None or self.high is not None
        if self.choices is not None and ranged:
            raise ValueError("give either choices or low/high, not both")
        if self.choices is None:
            if self.low is None or self.high is None:
                raise ValueError("a range needs both low and high")
            if not self.low < self.high:
                raise ValueError(f"low ({self.low}) must be below high ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError("a log range needs low > 0")
        return self

    @property
    def is_int(self) -> bool:
        nums = [self.low, self.high] + ([self.step] if self.step is not None else [])
        return self.choices is None and all(float(x).is_integer() for x in nums)  # type: ignore[arg-type]

    def suggest(self, trial: Any, key: str) -> Any:
        if self.choices is not None:
            return trial.suggest_categorical(key, self.choices)
        if self.is_int:
            return trial.suggest_int(key, int(self.low), int(self.high),  # type: ignore[arg-type]
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(key, float(self.low), float(self.high),  # type: ignore[arg-type]
                                   step=self.step, log=self.log)


class HyperoptConfig(Section):
    trials: int = Field(30, ge=1, le=100_000)  # total trials of the study (a resumed search tops up)
    sampler: Literal["tpe", "random"] = "tpe"
    seed: int = 42  # the sampler's seed (each model keeps its own training seed)
    # path_sharpe: the mean Sharpe over the CPCV paths ([walkforward] splitter = "cpcv", a forecaster)
    objective: Literal["sharpe", "sortino", "calmar", "total_return", "sharpe_turnover", "path_sharpe"] = "sharpe"
    turnover_penalty: float = Field(0.05, ge=0)  # sharpe_turnover: Sharpe minus this x annual turnover
    strategy: str | None = None  # the evaluated strategy the objective scores; None = the first configured
    outer_start: date | None = None  # first day of the outer test span; None = the last outer_fraction
    outer_fraction: float = Field(0.33, gt=0, lt=1)  # of the history's span, when outer_start is not set
    study_name: str = Field("default", min_length=1)
    storage: Path = Path("var/hyperopt.sqlite")  # the Optuna study (resumes after a crash)
    pbo_blocks: int = Field(10, ge=2, le=20)  # CSCV blocks for the probability of backtest overfitting
    space: dict[str, ParamSpec] = Field(default_factory=dict)


def apply_params(data: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of settings ``data`` (``model_dump()``) with each dotted key set to its value."""

    out = copy.deepcopy(data)
    for key, value in params.items():
        node, last = _walk(out, key)
        node[last] = value
    return out


def check_space(data: dict[str, Any], space: dict[str, ParamSpec]) -> list[tuple[str, str]]:
    """Problems (key path, message) with the space's keys against settings ``data``."""
    problems = []
    for key in space:
        try:
            _walk(data, key)
        except KeyError as exc:
            problems.append((f"hyperopt.space.{key!s}", str(exc.args[0])))
    return problems


def _walk(data: dict[str, Any], key: str) -> tuple[dict[str, Any], str]:
    parts = key.split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = _by_name(node, part, ".".join(parts[:i]))
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(_unknown(part, node, ".".join(parts[:i + 1])))
        if node is None:
            raise KeyError(f"{'.'.join(parts[:i + 1])} is not set in the configuration")
    last = parts[-1]
    if not isinstance(node, dict):
        raise KeyError(f"{key} does not name a configuration value")
    if last not in node and not _is_open_mapping(parts):
        raise KeyError(_unknown(last, node, key))
    return node, last


def _is_open_mapping(parts: list[str]) -> bool:
    # a strategy's params are a free mapping checked by its kind; a new key there is allowed
    return len(parts) >= 4 and parts[0] == "strategies" and parts[2] == "params"


def _by_name(items: list[Any], name: str, where: str) -> dict[str, Any]:
    for item in items:
        if isinstance(item, dict) and item.get("name") == name:
            return item
    names = [str(i.get("name")) for i in items if isinstance(i, dict)]
    hint = difflib.get_close_matches(name, names, n=1)
    more = f"; did you mean {hint[0]!r}?" if hint else f"; configured: {', '.join(names) or 'none'}"
    raise KeyError(f"no entry named {name!r} in {where}{more}")


def _unknown(part: str, node: Any, where: str) -> str:
    keys = list(node) if isinstance(node, dict) else []
    hint = difflib.get_close_matches(part, keys, n=1)
    return f"unknown key {where!r}" + (f"; did you mean {hint[0]!r}?" if hint else "")
