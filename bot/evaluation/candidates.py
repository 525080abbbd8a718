"""What a walk-forward evaluates from one configuration: the model specs it fits, the model
strategies it replays on their forecasts as configured, the rule strategies it backtests beside
them, and the peer symbol's candles that cross-asset features read."""

from __future__ import annotations

from typing import Any

from bot.marketdata.source import CandleSource
from bot.config.settings import Settings, costed_models
from bot.core.errors import UserInputError
from bot.evaluation.runner import peer_history
from bot.kernel.settings import strategy_params
from strategies.base import Strategy
from strategies.baselines import BuyAndHold
from strategies.catalog import build_strategy
from strategies.features.history import History
from strategies.models.spec import ModelSpec

MODEL_KINDS = frozenset({"neural", "meta_labeled"})  # strategy kinds driven by walk-forward forecasts


def model_specs(settings: Settings) -> list[ModelSpec]:
    """``[[models]]`` (default: the five defaults), labelled with the configured round-trip cost."""
    return list(costed_models(settings))


def model_strategies(settings: Settings) -> list[tuple[str, str, dict[str, Any]]]:
    """(kind, name, params) of the enabled ``neural`` and ``meta_labeled`` strategies, as the app
    builds them (the configured round-trip cost filled in): walk-forward replays each, as
    configured, on the forecasts of the models it names. A ``neural`` strategy whose
    ``features`` differ from its models' is a config error, as it is live."""
    trained_on = {s.name: s.features for s in model_specs(settings)}
    out = []
    for cfg in settings.strategies:
        if not (cfg.enabled and cfg.kind in MODEL_KINDS):
            continue
        features = str(cfg.params.get("features", "default"))
        wrong = [m for m in cfg.params.get("models") or () if cfg.kind == "neural"
                 and trained_on.get(str(m), features) != features]
        if wrong:  # live, the strategy could not load them either: refused before any training
            raise UserInputError(
                f"strategy {cfg.name!r} reads feature spec {features!r} but its model(s) {', '.join(wrong)}"
                f" are trained on {trained_on[wrong[0]]!r}; set the strategy's features ="
                f" {trained_on[wrong[0]]!r} or the models' features = {features!r}")
        out.append((cfg.kind, cfg.name, strategy_params(settings, cfg)))
    return out


def rule_strategies(settings: Settings, symbol: str, timeframe: str) -> list[Strategy]:
    """The config's enabled non-model strategies, re-targeted at ``symbol``/``timeframe``,
    and buy-and-hold beside them when the config does not have it (the baseline to beat)."""
    out: list[Strategy] = []
    for i, cfg in enumerate(settings.strategies):
        if cfg.enabled and cfg.kind not in MODEL_KINDS:
            nested = _model_members(cfg.params)
            if nested:  # their registry models were trained on some span: scoring them would leak
                raise UserInputError(
                    f"strategies[{i}] ({cfg.name!r}, kind {cfg.kind!r}) wraps {', '.join(sorted(nested))}"
                    " member(s), which walkforward/evaluate cannot retrain fold by fold; set enabled = false"
                    " on it for the evaluation, or score it with `neuralbot backtest` after the models'"
                    " training span")
            out.append(build_strategy(cfg.kind, cfg.name, (symbol,), timeframe, cfg.params,
                                      where=f"strategies[{i}]"))
    if not any(isinstance(x, BuyAndHold) for x in out):
        out.append(BuyAndHold("buy_and_hold", (symbol,), timeframe))
    return out


def peer_of(settings: Settings, history: History) -> History | None:
    """The peer symbol's candles over ``history``'s span from the config's candle source, when a
    configured model reads cross-asset features (a missing series exits 2 naming the fix)."""
    ts = history.arrays["ts"]
    if not len(ts):
        return None
    return peer_history(CandleSource.from_settings(settings), history.symbol, history.timeframe,
                        model_specs(settings), int(ts[0]), int(ts[-1]) + 1)


def _model_members(params: Any) -> set[str]:
    """Model-driven kinds nested anywhere in a strategy's params (confluence members, a wrapped inner)."""
    if isinstance(params, dict):
        own = {str(params["kind"])} & MODEL_KINDS if "kind" in params else set()
        return own.union(*(_model_members(v) for v in params.values()))
    if isinstance(params, list | tuple):
        return set().union(*(_model_members(v) for v in params))
    return set()
