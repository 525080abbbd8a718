"""The in-sample guard: a backtest must not replay the candles its models were trained on.

A model strategy's models carry, in their registry ``meta.json``, the span of the
history they were trained on (``data_range.first_ts .. last_ts``: train,
validation and their own test split, plus label spans). A backtest whose span
overlaps that span measures memorisation, not forecasting: ``neuralbot backtest``
refuses it unless ``--allow-in-sample`` is given, and says so loudly either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from bot.config.settings import Settings
from bot.core.events import timeframe_ms


@dataclass(frozen=True, slots=True)
class TrainedSpan:
    strategy: str
    symbol: str
    model: str
    first_ts: int  # first candle of the training history (open time, ms)
    end_ts: int  # end of the training history's last candle (ms)


class InSampleError(ValueError):
    """A backtest span overlaps the span its models were trained on."""


def trained_spans(settings: Settings, symbols: list[str] | None = None,
                  timeframe: str | None = None) -> list[TrainedSpan]:
    """Training spans of every model of every enabled ``neural`` strategy (registry metadata)."""
    from strategies.models.registry_files import model_dir, read_meta

    out = []
    for cfg in settings.strategies:
        if not cfg.enabled or cfg.kind != "neural":
            continue
        tf = timeframe or cfg.timeframe or settings.backtest.timeframe
        names = list(cfg.params.get("models") or ())
        vol = cfg.params.get("vol_model")
        names += [vol] if isinstance(vol, str) and vol else []
        for symbol in symbols or cfg.symbols or settings.backtest.symbols:
            for name in names:
                d = model_dir(str(cfg.params.get("models_dir", "models")), symbol, tf, str(name))
                if not (Path(d) / "meta.json").exists():
                    continue  # building the strategy reports the missing model
                rng = read_meta(d).get("data_range") or {}
                if "first_ts" in rng and "last_ts" in rng:
                    out.append(TrainedSpan(cfg.name, symbol, str(name), int(rng["first_ts"]),
                                           int(rng["last_ts"]) + timeframe_ms(tf)))
    return out


def overlaps(spans: list[TrainedSpan], start_ms: int | None, end_ms: int | None) -> list[TrainedSpan]:
    """The spans that share time with the backtest ``[start_ms, end_ms)`` (None = unbounded)."""
    lo = start_ms if start_ms is not None else -(2**62)
    hi = end_ms if end_ms is not None else 2**62
    return [s for s in spans if s.first_ts < hi and lo < s.end_ts]


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M")


def describe(hits: list[TrainedSpan]) -> str:
    first = hits[0]
    return (f"the backtest span overlaps the training span of {len(hits)} model(s), e.g. "
            f"{first.strategy}/{first.model} on {first.symbol} trained on "
            f"{_day(first.first_ts)} .. {_day(first.end_ts)}: that is in-sample")


def check_in_sample(settings: Settings, start_ms: int | None, end_ms: int | None, allow: bool,
                    symbols: list[str] | None = None, timeframe: str | None = None) -> str | None:
    """Raise :class:`InSampleError` on an overlap unless ``allow``; return the warning if allowed."""
    hits = overlaps(trained_spans(settings, symbols, timeframe), start_ms, end_ms)
    if not hits:
        return None
    message = describe(hits)
    if not allow:
        raise InSampleError(f"{message}; start the backtest after the training span (--from), "
                            "or pass --allow-in-sample to run it anyway")
    return f"WARNING: {message} (--allow-in-sample): its figures are not out of sample"
