"""What a walk-forward evaluates from one configuration: the model specs it fits, the decision
strategies it scores on their forecasts, and the rule strategies it backtests beside them."""

from __future__ import annotations

from typing import Any

from bot.app import strategy_params
from bot.config import Settings, costed_models
from strategies.base import Strategy
from strategies.baselines import BuyAndHold
from strategies.catalog import build_strategy
from strategies.model_config import ModelSpec

MODEL_KINDS = frozenset({"neural", "meta_labeled"})  # strategy kinds driven by walk-forward forecasts


def model_specs(settings: Settings) -> list[ModelSpec]:
    """``[[models]]`` (default: the five defaults), labelled with the configured round-trip cost."""
    return list(costed_models(settings))


def decision_strategies(settings: Settings) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, name, params) of the enabled ``neural`` strategies with a decision layer and the
    ``meta_labeled`` ones, as the app builds them (the configured round-trip cost filled in):
    walk-forward scores them on its forecasts."""
    return [(cfg.kind, cfg.name, strategy_params(settings, cfg)) for cfg in settings.strategies
            if cfg.enabled and (cfg.kind == "meta_labeled" or (cfg.kind == "neural" and "decision" in cfg.params))]


def rule_strategies(settings: Settings, symbol: str, timeframe: str) -> list[Strategy]:
    """The config's enabled non-model strategies, re-targeted at ``symbol``/``timeframe``,
    and buy-and-hold beside them when the config does not have it (the baseline to beat)."""
    out: list[Strategy] = []
    for i, cfg in enumerate(settings.strategies):
        if cfg.enabled and cfg.kind not in MODEL_KINDS:
            out.append(build_strategy(cfg.kind, cfg.name, (symbol,), timeframe, cfg.params,
                                      where=f"strategies[{i}]"))
    if not any(isinstance(x, BuyAndHold) for x in out):
        out.append(BuyAndHold("buy_and_hold", (symbol,), timeframe))
    return out
