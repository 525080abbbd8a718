"""``neuralbot hyperopt``: a nested walk-forward search with its luck measured.

``hyperopt --config FILE [--trials N] [--symbol S] [--ray-address ADDR] [--report DIR] [--json]``
searches ``[hyperopt.space]`` on the inner span of each configured backtest symbol,
scores the winner once on the outer span, and prints the winner as a TOML snippet,
its outer scores, its deflated Sharpe (over every trial in the ledger for the
series) and the probability of backtest overfitting.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bot.cli.common import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, load_config_or_exit


def add_parsers(subparsers: Any) -> None:
    hp = subparsers.add_parser("hyperopt", help="search [hyperopt.space] by nested walk-forward; report luck")
    hp.add_argument("--config", metavar="FILE", help="TOML configuration (default: $NEURALBOT_CONFIG)")
    hp.add_argument("--trials", type=int, help="trials in the study (default: [hyperopt] trials)")
    hp.add_argument("--symbol", help="only this symbol")
    hp.add_argument("--ray-address", metavar="ADDR", help="run the trials on this Ray cluster")
    hp.add_argument("--report", metavar="DIR", type=Path, help="write an HTML report with plots here")
    hp.add_argument("--json", action="store_true", help="print the result as one JSON object")
    hp.add_argument("--no-progress", action="store_true", help="no progress bars")
    hp.set_defaults(func=cmd_hyperopt)


def cmd_hyperopt(args: argparse.Namespace) -> int:
    # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
    from bot.config.logging_setup import configure_logging
    from bot.evaluation.compute import Compute
    from bot.evaluation.hyperopt import result_dict, run_hyperopt
    from bot.evaluation.trial import UnknownStrategy
    from bot.marketdata.source import CandleSource
    from strategies.features.history import load_history

    settings = load_config_or_exit(args)
    configure_logging("WARNING", settings.logging.format)
    if args.trials is not None and args.trials < 1:
        print("invalid argument: --trials must be at least 1", file=sys.stderr)
        return EXIT_CONFIG
    if not settings.hyperopt.space:
        print("invalid configuration: [hyperopt.space] is empty; name at least one key to search "
              '(e.g. "walkforward.long_above" = { low = 0.5, high = 0.6 })', file=sys.stderr)
        return EXIT_CONFIG
    ccfg = settings.compute
    if args.ray_address:
        ccfg = ccfg.model_copy(update={"backend": "ray", "address": args.ray_address})
    timeframe = settings.backtest.timeframe
    symbols = [args.symbol] if args.symbol else list(settings.backtest.symbols)
    wf = settings.walkforward
    start = str(wf.start or settings.backtest.start or "") or None
    end = str(wf.end or settings.backtest.end or "") or None
    results = []
    with Compute(ccfg, progress=not args.no_progress) as compute:
        for symbol in symbols:
            try:
                history = load_history(CandleSource.from_settings(settings), symbol, timeframe, start, end)
                results.append(run_hyperopt(settings, history, compute, args.trials, not args.no_progress))
            except FileNotFoundError as exc:
                print(f"error: {exc} (set data.dir in the config)", file=sys.stderr)
                return EXIT_FAILURE
            except (UnknownStrategy, ValueError) as exc:
                print(f"invalid configuration: {exc}", file=sys.stderr)
                return EXIT_CONFIG
    payload = {f"{r.symbol} {r.timeframe}": result_dict(r) for r in results}
    if args.report:
        # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
        from bot.evaluation.research_report import write_hyperopt_report

        path = write_hyperopt_report(results, args.report)
        print(f"report: {path}", file=sys.stderr)
    if args.json:
        # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
        from bot.evaluation.report import json_safe

        print(json.dumps(json_safe(payload), sort_keys=True))
    else:
        for r in results:
            print_result(r)
    return EXIT_OK


def print_result(r: Any) -> None:
    from datetime import UTC, datetime

    from bot.evaluation.hyperopt import (
        toml_snippet,  # numpy: deferred, as in every handler
    )

    day = datetime.fromtimestamp(r.outer_start_ms / 1000, UTC).strftime("%Y-%m-%d")
    i, o = r.inner_stats, r.outer_stats
    print(f"\n{r.symbol} {r.timeframe}: {r.n_trials} configurations searched on the bars before {day}")
    print(f"  best inner Sharpe {r.best_inner.get('sharpe', 0):.2f}, deflated Sharpe {i.dsr:.3f} "
          f"(over {i.n_trials} configurations tried on this series)")
    if r.pbo is not None:
        print(f"  probability of backtest overfitting {r.pbo.pbo:.2f} ({r.pbo.n_splits} CSCV splits)")
    print(f"  outer span (scored once): Sharpe {r.outer.get('sharpe', 0):.2f}, "
          f"annual return {r.outer.get('annual_return', 0):+.1%}, max drawdown {r.outer.get('max_drawdown', 0):.1%}, "
          f"{r.outer.get('trades', 0)} trades, PSR {o.psr:.3f}")
    if r.flagged:
        print("  FLAGGED: deflated Sharpe below 0.95 or PBO above 0.2; the winner may be luck")
    print("\n# best parameters\n" + toml_snippet(r.best_params))
