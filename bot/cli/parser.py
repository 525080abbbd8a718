"""``neuralbot`` command line. Exit codes: 0 ok, 1 runtime failure, 2 bad configuration/usage.

Building the parser imports no third-party package: ``--help`` and ``status`` answer in well
under 0.3 s (``bench/bench_cli.py``), so every command imports what it runs inside its handler
(``tests/cli/test_cli_imports.py`` keeps torch, scikit-learn, ccxt, numpy, pydantic... out).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from typing import TYPE_CHECKING

from bot.cli.common import (  # standard library only: cheap at start-up
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    add_config_arg,
    load_config_or_exit,
    parse_date,
    print_summary,
)
from bot.core.errors import UserInputError  # standard library only: cheap at start-up

if TYPE_CHECKING:
    from bot.config.settings import Settings

# Modules that contribute subcommands through ``add_parsers(subparsers)``, with the subcommands each
# adds: a command line that names one builds only its own parser (argparse takes ~10 ms to build them
# all, a tenth of what ``status`` may take); tests/cli/test_parser_commands.py keeps the names true.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "bot.cli.market_data": ("download", "import", "sim-exchange"),
    "bot.cli.execution": ("halt", "resume"),
    "bot.cli.ops": ("status",),
    "bot.cli.train": ("train",),
    "bot.cli.evaluation": ("walkforward", "evaluate"),
    "bot.cli.research": ("hyperopt",),
    "bot.cli.plot": ("plot",),
}
OWN_COMMANDS = ("backtest", "run", "demo")  # built here, always


def _setup(settings: Settings, args: argparse.Namespace, mode: str, quiet: bool = False) -> str:
    import uuid

    from bot.config.logging_setup import (
        configure_logging,  # deferred: structlog is not needed for --help
    )

    run_id = uuid.uuid4().hex[:12]
    level = settings.logging.level
    if quiet and not getattr(args, "verbose", False):
        level = "WARNING"
    configure_logging(level, settings.logging.format, run_id=run_id, mode=mode)
    return run_id


def cmd_backtest(args: argparse.Namespace) -> int:
    import asyncio
    import gc

    from bot.kernel.compose import (
        run_backtest,  # deferred: the Engine, numpy and the strategies
    )
    from bot.kernel.in_sample import InSampleError
    from strategies.catalog import StrategyParamError

    settings = load_config_or_exit(args)
    run_id = _setup(settings, args, "backtest", quiet=True)
    # what is loaded now (modules, the configuration) lives until the process ends: out of the
    # collector's way, the replay's full collections do not walk it again (~35 ms of an MA backtest;
    # collecting first would cost as much). The command ends with the process (bot/__main__.py).
    gc.freeze()
    try:
        result = asyncio.run(
            run_backtest(
                settings,
                symbols=[args.symbol] if args.symbol else None,
                timeframe=args.timeframe,
                start=args.start,
                end=args.end,
                run_id=run_id,
                allow_in_sample=args.allow_in_sample,
            )
        )
    except InSampleError as exc:
        print(f"backtest refused: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StrategyParamError as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except FileNotFoundError as exc:
        source = args.config or "$NEURALBOT_CONFIG"
        print(f"error: {exc} (data.dir of {source}: set it, or NEURALBOT_DATA__DIR, to the data directory)",
              file=sys.stderr)
        return EXIT_CONFIG  # the data the config names is missing: bad input, like a bad key
    summary = dict(result.summary)
    if "in_sample" in summary:
        print(summary["in_sample"], file=sys.stderr)
    if args.report or args.json:
        # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
        from bot.cli.evaluation import (
            evaluate_backtest,
            strategy_scores,
            write_backtest_report,
        )

        ev = evaluate_backtest(result, settings)
        if args.report:
            summary["report"] = str(write_backtest_report(ev, args.report, f"Backtest {result.portfolio}"))
        if args.json:
            summary["strategies"] = strategy_scores(ev)
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        print_summary("Backtest", summary)
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from bot.app.daemon import (
        run_daemon,  # deferred: the daemon imports ccxt and the models
    )
    from bot.store.lock import StoreLocked
    from bot.store.store import StoreError
    from strategies.catalog import StrategyParamError

    settings = load_config_or_exit(args)
    run_id = _setup(settings, args, settings.mode)
    try:
        summary = asyncio.run(run_daemon(settings, run_id, config_path=args.config))
    except StrategyParamError as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (StoreError, StoreLocked) as exc:  # an unusable store, or another daemon owns it
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.json:
        print(json.dumps(summary, default=str, sort_keys=True))
    elif args.summary:
        print_summary(f"Run {run_id} ({settings.mode})", summary)
    return EXIT_FAILURE if str(summary.get("stop_reason", "")).startswith("error") else EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
    from pathlib import Path

    from bot.cli.demo import main as demo_main

    settings = load_settings_for_demo(args)
    _setup(settings, args, "demo", quiet=True)
    return demo_main(Path(args.config) if args.config else None)


def load_settings_for_demo(args: argparse.Namespace) -> Settings:
    # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
    from bot.cli.demo import REPO

    if not args.config:
        args.config = str(REPO / "config.example.toml")
    return load_config_or_exit(args)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand or, given a ``command`` (one of ``OWN_COMMANDS`` or of
    ``COMMAND_MODULES``), of it and ``OWN_COMMANDS``: what a command line naming it needs."""
    parser = argparse.ArgumentParser(
        prog="neuralbot",
        description="Neural-network crypto trading bot: backtest, paper, sandbox and (opt-in) live.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    bt = sub.add_parser("backtest", help="replay history through the Engine with simulated fills")
    add_config_arg(bt)
    bt.add_argument("--symbol", help="override the configured symbols with one symbol")
    bt.add_argument("--timeframe", help="override the configured timeframe (e.g. 1h)")
    bt.add_argument("--from", dest="start", type=parse_date, help="first day (YYYY-MM-DD, inclusive)")
    bt.add_argument("--to", dest="end", type=parse_date, help="last day (YYYY-MM-DD, exclusive)")
    bt.add_argument("--json", action="store_true",
                    help="print the metrics as one JSON object (also per strategy, each replayed alone)")
    bt.add_argument("--report", metavar="DIR", help="also write an HTML report (equity, drawdowns, trades, "
                    "each strategy alone vs buy-and-hold) into DIR")
    bt.add_argument("--allow-in-sample", action="store_true",
                    help="run even when the span overlaps the models' training span (refused otherwise)")
    bt.add_argument("-v", "--verbose", action="store_true", help="log every order and fill")
    bt.set_defaults(func=cmd_backtest)

    run = sub.add_parser("run", help="run the trading daemon until SIGINT/SIGTERM")
    add_config_arg(run)
    run.add_argument("--summary", action="store_true", help="print a summary on exit")
    run.add_argument("--json", action="store_true", help="print the exit summary as one JSON object")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="run the bot over real BTC/USDT hourly data and print a summary")
    add_config_arg(demo)
    demo.set_defaults(func=cmd_demo)

    for name, commands in COMMAND_MODULES.items():
        if command is None or command in commands:
            importlib.import_module(name).add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # a known subcommand first: only its parser is built (anything else: all, for the help or the error)
    known = {*OWN_COMMANDS, *(c for commands in COMMAND_MODULES.values() for c in commands)}
    named = argv[0] if argv and argv[0] in known else None
    parser = build_parser(named)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_CONFIG
    try:
        return int(args.func(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        return EXIT_OK
    except UserInputError as exc:  # raised at the source, naming what to fix: one line, exit 2
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:  # last resort: a clear message, not a bare traceback
        import structlog  # deferred: only this path logs without a command's setup

        structlog.get_logger("neuralbot").exception("command_failed", command=args.command)
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
