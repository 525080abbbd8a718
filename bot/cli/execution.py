"""``neuralbot halt`` and ``neuralbot resume``: the operator's trading-state commands.

``halt [--flatten] --why TEXT``: persist HALTED for the configured portfolio (a running
daemon follows within seconds, a restarted one starts halted), cancel our open entry
orders at the exchange and, with ``--flatten``, close every open position (paper: the
daemon's paper book closes them; the answer says when). ``resume --why TEXT``: back to
ACTIVE, refused while the cause persists. Both are stored with who, when and why
(:mod:`bot.ops.trading_control`). Exit codes: 0 done, 1 refused or the exchange could not
be reached, 2 bad config.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from bot.cli.common import EXIT_FAILURE, EXIT_OK, load_config_or_exit


def add_parsers(subparsers: Any) -> None:
    p = subparsers.add_parser("halt", help="halt trading: cancel open entries, optionally flatten")
    p.add_argument("--config", metavar="FILE", help="TOML configuration (default: $NEURALBOT_CONFIG)")
    p.add_argument("--flatten", action="store_true", help="also close every open position")
    p.add_argument("--why", default="neuralbot halt", metavar="TEXT", help="stored with the halt")
    p.add_argument("--who", metavar="NAME", help="operator name stored with it (default: OS user)")
    p.set_defaults(func=halt_handler)
    r = subparsers.add_parser("resume", help="lift a halt (refused while its cause persists)")
    r.add_argument("--config", metavar="FILE", help="TOML configuration (default: $NEURALBOT_CONFIG)")
    r.add_argument("--why", required=True, metavar="TEXT", help="why it is safe to trade again (stored)")
    r.add_argument("--who", metavar="NAME", help="operator name stored with it (default: OS user)")
    r.set_defaults(func=resume_handler)


def _prepare(args: argparse.Namespace, what: str) -> Any:
    # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
    from bot.config.logging_setup import configure_logging

    settings = load_config_or_exit(args)
    configure_logging(settings.logging.level, settings.logging.format, run_id=what, mode=settings.mode)
    return settings


def halt_handler(args: argparse.Namespace) -> int:
    import asyncio  # deferred: the CLI parser starts without asyncio
    from bot.ops.trading_control import default_operator, halt_trading

    settings = _prepare(args, "halt")
    try:
        summary = asyncio.run(halt_trading(settings, who=args.who or default_operator(), why=args.why,
                                           flatten=args.flatten))
    except Exception as exc:  # noqa: BLE001  one attempt, reported; the operator retries
        print(f"halt failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(", ".join(f"{k}={v}" for k, v in summary.items()))
    return EXIT_OK


def resume_handler(args: argparse.Namespace) -> int:
    import asyncio  # deferred: the CLI parser starts without asyncio
    from bot.ops.trading_control import ResumeRefused, default_operator, resume_trading

    settings = _prepare(args, "resume")
    try:
        summary = asyncio.run(resume_trading(settings, who=args.who or default_operator(), why=args.why))
    except ResumeRefused as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_FAILURE
    print(", ".join(f"{k}={v}" for k, v in summary.items()))
    return EXIT_OK
