"""Strategy kinds by name: how a ``[[strategies]]`` TOML entry becomes a Strategy."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from strategies.base import Strategy
from strategies.baselines import BuyAndHold, MovingAverageCrossover, RsiMacd
from strategies.confirmation import ConfirmedStrategy
from strategies.confluence import Confluence

Factory = Callable[..., Strategy]


class LazyFactory:
    """A factory imported on first use (torch is only loaded by configs that use models)."""

    def __init__(self, module: str, attr: str) -> None:
        self.module, self.attr = module, attr

    def target(self) -> Factory:
        import importlib

        return getattr(importlib.import_module(self.module), self.attr)  # type: ignore[no-any-return]

    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self.target())

    def __call__(self, **kwargs: Any) -> Strategy:
        return self.target()(**kwargs)


KINDS: dict[str, Factory] = {
    "ma_crossover": MovingAverageCrossover,
    "buy_and_hold": BuyAndHold,
    "rsi_macd": RsiMacd,
    "neural": LazyFactory("strategies.neural", "NeuralEnsemble"),
    "confluence": Confluence,
    "confirmed": ConfirmedStrategy,
    "meta_labeled": LazyFactory("strategies.meta", "MetaLabeled"),
}


class StrategyParamError(ValueError):
    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}")


def validate_params(kind: str, params: Mapping[str, Any], where: str = "strategy") -> None:
    """Check that ``kind`` exists and takes every key of ``params`` (nothing is built)."""
    factory = KINDS.get(kind)
    if factory is None:
        raise StrategyParamError(f"{where}.kind", f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    accepted = set(inspect.signature(factory).parameters) - {"name", "symbols", "timeframe"}
    for key in params:
        if key not in accepted:
            raise StrategyParamError(
                f"{where}.params.{key}",
                f"not a parameter of {kind!r}; accepted: {', '.join(sorted(accepted)) or 'none'}",
            )


def build_strategy(
    kind: str, name: str, symbols: tuple[str, ...], timeframe: str, params: Mapping[str, Any],
    where: str = "strategy",
) -> Strategy:
    """Construct a strategy, naming the offending parameter key on bad input."""
    validate_params(kind, params, where)
    factory = KINDS[kind]
    try:
        return factory(name=name, symbols=symbols, timeframe=timeframe, **params)
    except (TypeError, ValueError) as exc:
        raise StrategyParamError(f"{where}.params", str(exc)) from None
