"""Strategy kinds by name: how a ``[[strategies]]`` TOML entry becomes a Strategy."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import inspect
from collections.abc import Callable, Iterator, Mapping
from functools import cached_property
from types import CodeType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from strategies.base import Strategy

Factory = Callable[..., "Strategy"]


def _parameters(module: str, attr: str) -> frozenset[str]:
    """The keyword names class ``attr``'s ``__init__`` (or function ``attr``) of ``module`` takes
    (besides ``self``), read from the module's byte code (its ``.pyc``, compiled from the source when
    that is newer), which is never run."""
    spec = importlib.util.find_spec(module)
    if spec is None or not isinstance(spec.loader, importlib.abc.InspectLoader):
        raise ImportError(f"strategy module {module} not found")
    code = spec.loader.get_code(module)
    if code is None:
        raise ImportError(f"strategy module {module} has no code")
    fn = next(c for c in _code_constants(code) if c.co_qualname == attr)
    if not fn.co_flags & inspect.CO_OPTIMIZED:  # a class body: its __init__ is one of its constants
        fn = next(c for c in _code_constants(fn) if c.co_qualname == f"{attr}.__init__")
    return frozenset(fn.co_varnames[:fn.co_argcount + fn.co_kwonlyargcount]) - {"self"}


def _code_constants(code: CodeType) -> Iterator[CodeType]:
    return (c for c in code.co_consts if isinstance(c, CodeType))


class LazyFactory:
    """A strategy class (or factory function) named by module and attribute, imported on first build.

    Checking a config's params needs only the names it takes: they are read from the
    module's byte code, never run, so loading a config imports neither numpy nor torch (``neuralbot
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
