"""Cross-field configuration checks, run at start-up after the sections validate.

Each check is a small named function returning ``(key path, message)`` for a problem,
or ``None``; ``load_settings`` reports every problem at once and exits 2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.config.search_space import check_space
from strategies.catalog import StrategyParamError, validate_params

if TYPE_CHECKING:
    from bot.config.settings import Settings

CrossCheck = Callable[["Settings"], tuple[str, str] | None]


def live_requires_opt_in(s: Settings) -> tuple[str, str] | None:
    if s.mode == "live" and not s.i_understand_live_trading:
        return (
            "i_understand_live_trading",
            'mode = "live" trades real money; set i_understand_live_trading = true to confirm',
        )
    return None


def exchange_modes_require_keys(s: Settings) -> tuple[str, str] | None:
    if s.mode in ("live", "sandbox") and (s.api_key is None or s.api_secret is None):
        return (
            "api_key",
            f'mode = "{s.mode}" needs API credentials: set NEURALBOT_API_KEY and NEURALBOT_API_SECRET'
            " (or files api_key/api_secret in NEURALBOT_SECRETS_DIR)",
        )
    return None


def stop_below_take_profit(s: Settings) -> tuple[str, str] | None:
    tp = s.risk.take_profit_pct
    if tp is not None and tp <= s.risk.stop_loss_pct:
        return (
            "risk.take_profit_pct",
            f"take profit {tp}% must be above stop loss {s.risk.stop_loss_pct}%",
        )
    return None


def heat_covers_one_position(s: Settings) -> tuple[str, str] | None:
    worst = s.risk.max_position_pct * s.risk.stop_loss_pct / 100.0
    if worst > s.risk.max_heat_pct:
        return (
            "risk.max_heat_pct",
            f"{s.risk.max_heat_pct}% cannot hold even one full position at its stop"
            f" ({s.risk.max_position_pct}% x {s.risk.stop_loss_pct}% = {worst:.2f}%)",
        )
    return None


def backtest_dates_ordered(s: Settings) -> tuple[str, str] | None:
    b = s.backtest
    if b.start is not None and b.end is not None and b.end <= b.start:
        return ("backtest.end", f"end {b.end} must be after start {b.start}")
    return None


def _repeated(key: str, what: str, names: list[str]) -> tuple[str, str] | None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        return (key, f"{what} names must be unique; repeated: {', '.join(dupes)}")
    return None


def model_names_unique(s: Settings) -> tuple[str, str] | None:
    return _repeated("models", "model", [m.name for m in s.models])


def strategy_names_unique(s: Settings) -> tuple[str, str] | None:
    return _repeated("strategies", "strategy", [st.name for st in s.strategies])


def needs_a_strategy(s: Settings) -> tuple[str, str] | None:
    if not any(st.enabled for st in s.strategies):
        return ("strategies", "no enabled strategy; add a [[strategies]] table (see config.example.toml)")
    return None


def strategy_params_accepted(s: Settings) -> tuple[str, str] | None:
    for i, st in enumerate(s.strategies):
        try:
            validate_params(st.kind, st.params, where=f"strategies[{i}]")
        except StrategyParamError as exc:
            return (exc.key, str(exc).split(": ", 1)[1])
    return None


def symbol_cap_covers_one_trade(s: Settings) -> tuple[str, str] | None:
    if s.risk.max_symbol_exposure_pct < s.risk.max_position_pct:
        return (
            "risk.max_symbol_exposure_pct",
            f"{s.risk.max_symbol_exposure_pct}% is below max_position_pct"
            f" {s.risk.max_position_pct}%: no full-size trade could pass",
        )
    return None


def hyperopt_space_names_settings(s: Settings) -> tuple[str, str] | None:
    problems = check_space(s.model_dump(mode="json"), s.hyperopt.space)
    return problems[0] if problems else None


def telegram_commands_need_a_bot(s: Settings) -> tuple[str, str] | None:
    if s.telegram.commands and s.notify.telegram_token is None:
        return ("telegram.commands", "Telegram commands need the bot token: set NEURALBOT_NOTIFY__TELEGRAM_TOKEN"
                " and notify.telegram_chat_id")
    return None


CROSS_FIELD_CHECKS: tuple[CrossCheck, ...] = (
    symbol_cap_covers_one_trade,
    live_requires_opt_in,
    exchange_modes_require_keys,
    stop_below_take_profit,
    heat_covers_one_position,
    backtest_dates_ordered,
    strategy_names_unique,
    model_names_unique,
    needs_a_strategy,
    strategy_params_accepted,
    hyperopt_space_names_settings,
    telegram_commands_need_a_bot,
)
