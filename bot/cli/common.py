"""What every ``neuralbot`` subcommand shares: exit codes, ``--config``, dates, the run summary.

Standard library only at import: the parser and ``--help`` stay fast (``tests/cli/test_cli_imports.py``).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config.settings import Settings

EXIT_OK, EXIT_FAILURE, EXIT_CONFIG = 0, 1, 2


def parse_date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", metavar="FILE", help="TOML configuration (default: $NEURALBOT_CONFIG)"
    )


def load_config_or_exit(args: argparse.Namespace) -> Settings:
    """Load the configuration named by ``--config``; on error print why and exit 2."""
    from bot.config.settings import ConfigError  # deferred: pydantic is not needed for --help
    from bot.config.load import load_settings

    try:
        return load_settings(getattr(args, "config", None))
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None


def print_summary(title: str, s: dict[str, Any]) -> None:
    def when(ms: int | None) -> str:
        return "-" if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M")

    rows = [
        ("period", f"{when(s.get('first_ts'))} -> {when(s.get('last_ts'))} UTC"),
        ("candles", f"{s['candles']:,} ({s.get('rejected_candles', 0)} rejected)"),
        ("signals / orders / denied", f"{s['signals']:,} / {s['orders']:,} / {s['denied']:,}"),
        ("round-trip trades", f"{s['trades']:,}  (win rate {s['win_rate']:.1%})"),
        ("equity", f"{s['initial_equity']:,.2f} -> {s['final_equity']:,.2f}  ({s['total_return']:+.2%})"),
        ("annual return", f"{s['annual_return']:+.2%}"),
        ("sharpe (annualised)", f"{s['sharpe']:.2f}"),
        ("max drawdown", f"{s['max_drawdown']:.2%}"),
        ("fees paid", f"{s['fees']:,.2f}"),
    ]
    if s.get("denials_by_check"):
        rows.append(("denials by check", ", ".join(f"{k}={v}" for k, v in s["denials_by_check"].items())))
    if s.get("store"):
        rows.append(("stored in", f"{s['store']} (portfolio {s.get('portfolio', '')})"))
    if s.get("report"):
        rows.append(("report", s["report"]))
    width = max(len(k) for k, _ in rows)
    print(title)
    print("-" * len(title))
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
