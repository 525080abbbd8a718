"""``neuralbot walkforward`` and ``neuralbot evaluate``; the report behind ``backtest --report``.

* ``walkforward --config FILE [--report DIR] [--json]``: walk-forward retraining of
  the configured models (``[[models]]``, default: the 5 default models) on every
  configured backtest symbol, and the config's rule strategies beside them;
* ``evaluate --config FILE --data CANDLES.csv[.gz] [--json] [--report DIR]``: the
  same on one candle file alone (any file in the ``ohlcv`` format; symbol and
  timeframe from the file name or the bar spacing, the schedule shrunk to fit a
  short file);
* :func:`write_backtest_report` writes the HTML report of a finished ``backtest``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.cli.common import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, load_config_or_exit

if TYPE_CHECKING:
    import numpy as np



def add_parsers(subparsers: Any) -> None:
    wf = subparsers.add_parser("walkforward", help="walk-forward retrain and evaluate against the baselines")
    wf.add_argument("--config", metavar="FILE", help="TOML configuration (default: $NEURALBOT_CONFIG)")
    wf.add_argument("--report", metavar="DIR", type=Path, help="write an HTML report with plots here")
    wf.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    wf.add_argument("--symbol", help="only this symbol")
    wf.add_argument("--timeframe", help="override the configured timeframe")
    wf.add_argument("--no-progress", action="store_true", help="no progress bars")
    wf.add_argument("--ray-address", metavar="ADDR", help="run the folds on this Ray cluster ([compute])")
    wf.set_defaults(func=cmd_walkforward)

    ev = subparsers.add_parser("evaluate", help="walk-forward evaluate every strategy on one candle file")
    ev.add_argument("--config", metavar="FILE", help="TOML configuration (default: $NEURALBOT_CONFIG)")
    ev.add_argument("--data", metavar="CANDLES", type=Path, required=True,
                    help="CSV(.gz) with header timestamp,open,high,low,close,volume")
    ev.add_argument("--symbol", help="symbol label (default: from the file name, e.g. BTC_USDT-1h)")
    ev.add_argument("--timeframe", help="bar size (default: from the file name or the bar spacing)")
    ev.add_argument("--report", metavar="DIR", type=Path, help="write an HTML report with plots here")
    ev.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars")
    ev.set_defaults(func=cmd_evaluate)


def infer_symbol_timeframe(path: Path, ts: np.ndarray) -> tuple[str, str]:
    """``BTC_USDT-1h.csv.gz`` -> (``BTC/USDT``, ``1h``); else the median bar spacing."""
    import numpy as np  # deferred: numpy is not needed to build the CLI parser

    from bot.core.events import TIMEFRAME_MS

    m = re.match(r"^([A-Za-z0-9]+)_([A-Za-z0-9]+)-(\w+?)\.csv", path.name)
    if m and m.group(3) in TIMEFRAME_MS:
        return f"{m.group(1).upper()}/{m.group(2).upper()}", m.group(3)
    symbol = f"{m.group(1).upper()}/{m.group(2).upper()}" if m else path.name.split(".")[0].upper()
    step = int(np.median(np.diff(ts))) if len(ts) > 1 else 3_600_000
    tf = min(TIMEFRAME_MS, key=lambda k: abs(TIMEFRAME_MS[k] - step))
    return symbol, tf


def fit_schedule(cfg: Any, ts: np.ndarray) -> Any:
    """Shrink the schedule to a short history: half of it to train, at least 3 test periods."""
    # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
    from bot.evaluation.walkforward import DAY_MS

    span_days = (int(ts[-1]) - int(ts[0])) / DAY_MS if len(ts) > 1 else 0.0
    if span_days >= cfg.min_train_days + 180:
        return cfg
    train = max(1, int(span_days * 0.5))
    step = max(1, int((span_days - train) / 3))
    return cfg.model_copy(update={"min_train_days": train, "retrain_every": f"{step}d"})


# -- commands -----------------------------------------------------------------------


def _emit(evals: list[Any], args: argparse.Namespace, title: str, settings: Any, source: str) -> None:
    # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
    from bot.evaluation.luck import record_and_deflate
    from bot.evaluation.report import json_safe

    record_and_deflate(settings, evals, source)
    # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
    from bot.evaluation.tables import comparison_table, cpcv_table, fold_table, regime_table

    if args.json:
        print(json.dumps(json_safe({f"{e.symbol} {e.timeframe}": e.scores for e in evals}), sort_keys=True))
    else:
        for e in evals:
            print(f"\n{e.symbol} {e.timeframe}\n")
            print(comparison_table(e))
            print()
            print(regime_table(e))
            print()
            if paths := cpcv_table(e):
                print(paths)
                print()
            print(fold_table(e))
    if args.report:
        # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
        from bot.evaluation.report import write_report

        path = write_report(evals, args.report, title=title)
        print(f"report: {path}", file=sys.stderr)


def cmd_walkforward(args: argparse.Namespace) -> int:
    # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
    from bot.config.logging_setup import configure_logging
    from bot.evaluation import candidates
    from bot.evaluation.compute import Compute
    from bot.evaluation.runner import evaluate_history
    from bot.marketdata.source import CandleSource
    from strategies.features.history import load_history
    from bot.evaluation.walkforward import ScheduleError

    settings = load_config_or_exit(args)
    configure_logging("WARNING", settings.logging.format)
    cfg = settings.walkforward
    timeframe = args.timeframe or settings.backtest.timeframe
    symbols = [args.symbol] if args.symbol else list(settings.backtest.symbols)
    start = str(cfg.start or settings.backtest.start or "") or None
    end = str(cfg.end or settings.backtest.end or "") or None
    ccfg = settings.compute
    if args.ray_address:
        ccfg = ccfg.model_copy(update={"backend": "ray", "address": args.ray_address})
    evals = []
    with Compute(ccfg, progress=not args.no_progress) as compute:
        for symbol in symbols:
            try:
                history = load_history(CandleSource.from_settings(settings), symbol, timeframe, start, end)
            except FileNotFoundError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_FAILURE
            rules = candidates.rule_strategies(settings, symbol, timeframe)
            try:
                evals.append(evaluate_history(settings, history, cfg, rules, candidates.model_specs(settings),
                                              progress=not args.no_progress,
                                              configured=candidates.model_strategies(settings), compute=compute,
                                              peer=candidates.peer_of(settings, history)))
            except ScheduleError as exc:
                print(f"invalid configuration: {symbol} {timeframe}: {exc}", file=sys.stderr)
                return EXIT_CONFIG
    _emit(evals, args, f"Walk-forward {', '.join(symbols)} {timeframe}", settings, "walkforward")
    return EXIT_OK


def cmd_evaluate(args: argparse.Namespace) -> int:
    # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
    from bot.config.logging_setup import configure_logging
    from bot.evaluation import candidates
    from bot.evaluation.runner import evaluate_history
    from bot.marketdata.candle_csv import load_ohlcv_arrays
    from strategies.features.history import clean_history
    from bot.evaluation.walkforward import ScheduleError

    settings = load_config_or_exit(args)
    configure_logging("WARNING", settings.logging.format)
    try:
        arrays = load_ohlcv_arrays(args.data)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    symbol, timeframe = infer_symbol_timeframe(args.data, arrays["ts"])
    symbol, timeframe = args.symbol or symbol, args.timeframe or timeframe
    history = clean_history(arrays, symbol, timeframe)
    if len(history) < 200:
        print(f"error: {args.data}: only {len(history)} usable candles; need at least 200", file=sys.stderr)
        return EXIT_FAILURE
    cfg = fit_schedule(settings.walkforward, history.arrays["ts"])
    try:
        ev = evaluate_history(settings, history, cfg.model_copy(update={"cache_dir": None}),
                              candidates.rule_strategies(settings, symbol, timeframe),
                              candidates.model_specs(settings), progress=not args.no_progress,
                              configured=candidates.model_strategies(settings),
                              peer=candidates.peer_of(settings, history))
    except ScheduleError as exc:
        print(f"invalid configuration: {args.data}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if not ev.walkforward.folds:
        print(f"error: {args.data}: too short for a walk-forward fold", file=sys.stderr)
        return EXIT_FAILURE
    _emit([ev], args, f"Evaluation of {args.data.name} ({symbol} {timeframe})", settings, "evaluate")
    return EXIT_OK


# -- backtest --report ----------------------------------------------------------------


def evaluate_backtest(result: Any, settings: Any = None) -> Any:
    """Score a finished ``neuralbot backtest`` (``result``: ``bot.kernel.compose.BacktestResult``).

    The run's own portfolio is read back from its SQLite store. With ``settings``,
    every configured strategy and buy-and-hold are also replayed alone over the same
    candles and costs, so each can be compared with the baselines.
    """

    import asyncio  # deferred: the CLI parser starts without asyncio

    return asyncio.run(_backtest_eval(result, settings))


def write_backtest_report(ev: Any, report_dir: Path | str, title: str) -> Path:
    """The HTML report (plots, tables, trade lists) of :func:`evaluate_backtest`'s result."""
    # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
    from bot.evaluation.report import write_report

    return write_report([ev], Path(report_dir), title=title)


def strategy_scores(ev: Any) -> dict[str, dict[str, Any]]:
    """Metrics per strategy (``portfolio`` = the run itself), JSON-safe."""
    # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
    from bot.evaluation.report import json_safe

    return json_safe(ev.scores)  # type: ignore[no-any-return]


async def _backtest_eval(result: Any, settings: Any) -> Any:
    import numpy as np  # deferred: numpy is not needed to build the CLI parser

    from bot.evaluation.backtest import RunRecord
    from bot.evaluation.runner import AssetEvaluation
    from bot.evaluation.scoring import score
    from bot.evaluation.walkforward import WalkForwardResult
    from bot.store.store import Store

    s = result.summary
    store = await Store.open(s["store"], portfolio=result.portfolio)
    try:
        eq = await store.fetch("equity")
        fills = await store.fetch("fills")
    finally:
        await store.close()
    timeframe = settings.backtest.timeframe if settings is not None else "1h"
    symbol = ",".join(settings.backtest.symbols) if settings is not None else ""
    rec = RunRecord(
        strategy="portfolio", symbol=symbol, timeframe=timeframe, initial_equity=float(s["initial_equity"]),
        ts=np.asarray([r["ts"] for r in eq], dtype=np.int64),
        equity=np.asarray([r["equity"] for r in eq], dtype=np.float64),
        exposure=np.asarray([r["exposure"] for r in eq], dtype=np.float64),
        fills=fills, signals=[], stats=result.stats, fees=float(s.get("fees", 0.0)),
    )
    ev = AssetEvaluation(symbol, timeframe, WalkForwardResult(symbol, timeframe, [], {}))
    ev.records["portfolio"], ev.scores["portfolio"] = rec, score(rec)
    if settings is not None and len(settings.backtest.symbols) == 1 and s.get("first_ts") is not None:
        await _add_alone_runs(ev, settings, int(s["first_ts"]), int(s["last_ts"]) + 1)
    return ev


async def _add_alone_runs(ev: Any, settings: Any, first_ts: int, end_ts: int) -> None:
    # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
    from bot.evaluation import candidates
    from bot.evaluation.backtest import run_strategy
    from bot.evaluation.scoring import score
    from bot.marketdata.candle_csv import arrays_to_candles
    from bot.marketdata.source import CandleSource

    symbol, tf = settings.backtest.symbols[0], settings.backtest.timeframe
    arrays = CandleSource.from_settings(settings).load(symbol, tf, first_ts, end_ts)
    candles = arrays_to_candles(arrays, settings.exchange.name, symbol, tf)
    for strat in candidates.rule_strategies(settings, symbol, tf):
        rec = await run_strategy(settings, strat, candles)
        ev.records[strat.name], ev.scores[strat.name] = rec, score(rec)
