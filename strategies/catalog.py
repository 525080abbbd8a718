"""Strategy kinds by name: how a ``[[strategies]]`` TOML entry becomes a Strategy."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strategies.base import Strategy

Factory = Callable[..., "Strategy"]


def _parameters(module: str, attr: str) -> frozenset[str]:
    """The keyword names class ``attr``'s ``__init__`` (or function ``attr``) of ``module`` takes,
    read from its source (besides ``self``)."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ImportError(f"strategy module {module} not found")
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read(), spec.origin)
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef | ast.FunctionDef) and n.name == attr)
    if isinstance(node, ast.ClassDef):
        node = next(n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    a = node.args
    return frozenset(p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)) - {"self"}


class LazyFactory:
    """A strategy class (or factory function) named by module and attribute, imported on first build.

    Checking a config's params needs only the names it takes: they are read from the
    module's source, so loading a config imports neither numpy nor torch (``neuralbot
    status`` with a neural config starts in ~0.2 s, ``bench/bench_cli.py``). A factory
    that loads a strategy's models passes its other ``**options`` on to the class
    ``builds`` names: the parameters are both's, less what the factory supplies itself.
    """

    def __init__(self, module: str, attr: str, builds: tuple[str, str] | None = None,
                 supplies: frozenset[str] = frozenset({"holders", "options"})) -> None:
        self.module, self.attr, self.builds, self.supplies = module, attr, builds, supplies

    def target(self) -> Factory:
        return getattr(importlib.import_module(self.module), self.attr)  # type: ignore[no-any-return]

    @cached_property
    def parameters(self) -> frozenset[str]:
        """The keyword names a build accepts."""
        own = _parameters(self.module, self.attr)
        if self.builds is None:
            return own
        return (own | _parameters(*self.builds)) - self.supplies

    def __call__(self, **kwargs: Any) -> Strategy:
        return self.target()(**kwargs)


KINDS: dict[str, LazyFactory] = {
    "ma_crossover": LazyFactory("strategies.baselines", "MovingAverageCrossover"),
    "buy_and_hold": LazyFactory("strategies.baselines", "BuyAndHold"),
    "rsi_macd": LazyFactory("strategies.baselines", "RsiMacd"),
    "neural": LazyFactory("strategies.holders", "neural_ensemble",
                          builds=("strategies.neural", "NeuralEnsemble")),
    "confluence": LazyFactory("strategies.confluence", "Confluence"),
    "confirmed": LazyFactory("strategies.confirmation", "ConfirmedStrategy"),
    "meta_labeled": LazyFactory("strategies.holders", "meta_labeled",
                                builds=("strategies.meta", "MetaLabeled")),
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
    accepted = factory.parameters - {"name", "symbols", "timeframe"}
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
