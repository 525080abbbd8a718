"""The comparison the user asked for: neural models vs simple rules, out of sample, after costs.

    python -m bot.evaluation.comparison [--data-dir DIR] [--out docs/results.md] [--report DIR]

For BTC/USDT and ETH/USDT 1h (the real Binance files): walk-forward (train on the
first two years, test on the next quarter, retrain including it, roll on), every
model and the ensemble traded through the Engine, next to the MA crossover, RSI +
MACD (when the strategy kind exists) and buy-and-hold, with fees, slippage and
spread. Then directional accuracy by asset and timeframe (4H and 1D candles
aggregated exactly from the hourly files). Writes a Markdown file of tables.
Walk-forward forecasts are cached (``var/walkforward``), so a re-run only
re-does the backtests.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from bot.config.logging_setup import configure_logging
from bot.config.settings import Settings
from bot.core.aggregate import aggregate_arrays
from bot.evaluation.runner import AssetEvaluation, backtest_all, evaluate_history
from bot.evaluation.tables import (
    accuracy_table,
    comparison_table,
    display,
    fold_table,
    md_table,
    summary_lines,
)
from bot.evaluation.walkforward import WalkForwardConfig
from strategies.base import Strategy
from strategies.catalog import KINDS, build_strategy
from strategies.features.history import History, clean_history, load_history
from strategies.models.spec import ModelSpec, default_models

log = structlog.get_logger(__name__)

SYMBOLS = ("BTC/USDT", "ETH/USDT")
#: Speed settings that keep the full comparison feasible on 2 CPU cores.
COMPARISON_WF = WalkForwardConfig(max_train_windows=2500, epochs=4, threads=1)
BASELINES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("ma_crossover", "ma_crossover", {"fast": 20, "slow": 50}),
    ("rsi_macd", "rsi_macd", {}),
    ("buy_and_hold", "buy_and_hold", {}),
)


def comparison_models() -> list[ModelSpec]:
    return [s.model_copy(update={"gbm_max_iter": 80}) if s.kind == "gbm" else s for s in default_models()]


def baselines(symbol: str, timeframe: str) -> list[Strategy]:
    out = []
    for name, kind, params in BASELINES:
        if kind not in KINDS:
            log.warning("baseline_unavailable", kind=kind)
            continue
        out.append(build_strategy(kind, name, (symbol,), timeframe, params))
    return out


def resample(history: History, timeframe: str) -> History:
    arrays = aggregate_arrays(history.arrays, history.timeframe, timeframe)
    return clean_history(arrays, history.symbol, timeframe)


def run(data_dir: Path, out: Path, report_dir: Path | None, cfg: WalkForwardConfig,
        symbols: Sequence[str] = SYMBOLS, command: str = "") -> str:
    t0 = time.perf_counter()
    settings = Settings(data={"dir": data_dir})  # type: ignore[arg-type]
    models = comparison_models()
    main: list[AssetEvaluation] = []
    extra: list[AssetEvaluation] = []
    gross: list[AssetEvaluation] = []
    free = settings.model_copy(update={
        "exchange": settings.exchange.model_copy(update={"fee_rate": 0.0}),
        "backtest": settings.backtest.model_copy(update={"slippage_bps": 0.0})})
    for symbol in symbols:
        hourly = load_history(data_dir, symbol, "1h", None, None)
        main.append(evaluate_history(settings, hourly, cfg, baselines(symbol, "1h"), models))
        gross.append(asyncio.run(backtest_all(free, hourly, main[-1].walkforward, baselines(symbol, "1h"),
                                              cfg.model_copy(update={"spread_bps": 0.0}))))
        for tf in ("4h", "1d"):
            h = resample(hourly, tf)
            extra.append(evaluate_history(settings, h, cfg, baselines(symbol, tf), models))
    wall = time.perf_counter() - t0
    md = render(main, extra, cfg, wall, command, gross)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md)
    if report_dir is not None:
        # matplotlib: only when a report is written
        from bot.evaluation.report import write_report

        for ev in main + extra:
            write_report([ev], report_dir / f"{ev.symbol.replace('/', '_')}-{ev.timeframe}",
                         title=f"Walk-forward {ev.symbol} {ev.timeframe}")
    return md


def cost_table(after: AssetEvaluation, before: AssetEvaluation) -> str:
    rows = []
    for name, s in after.scores.items():
        b = before.scores.get(name)
        if b is None:
            continue
        rows.append([display(name), f"{b['sharpe']:.2f}", f"{100 * b['annual_return']:.1f}%",
                     f"{s['sharpe']:.2f}", f"{100 * s['annual_return']:.1f}%", str(s["trades"]),
                     f"{s['fees']:,.0f}"])
    return md_table(["Strategy", "Sharpe before costs", "Annual return before costs", "Sharpe after costs",
                     "Annual return after costs", "Trades", "Fees paid (of 10,000)"], rows)


def render(main: list[AssetEvaluation], extra: list[AssetEvaluation], cfg: WalkForwardConfig,
           wall: float, command: str, gross: list[AssetEvaluation] | None = None) -> str:
    fee = Settings().exchange.fee_rate
    slip = Settings().backtest.slippage_bps
    lines = [
        "# Results: neural models vs simple rules, out of sample, after costs",
        "",
        (f"Generated by `{command or 'python -m bot.evaluation.comparison'}` "
         f"in {wall / 60:.1f} min on this machine (walk-forward training: "
         f"{sum(e.walkforward.seconds for e in main + extra) / 60:.1f} min in total when first computed; "
         "re-runs reuse the forecasts cached under `var/walkforward`; 2 shared CPU cores)."),
        "",
        ("Walk-forward: train on the first "
         f"{cfg.min_train_days} days, test on the next {cfg.retrain_every}, retrain including it, roll on "
        f"(validation = last {cfg.val_fraction:.0%} of each training span, purged by the label horizon). "
        f"Costs: fee {fee:.2%} per side, slippage {slip:g} bps + half of a {cfg.spread_bps:g} bps spread per fill. "
        f"Every strategy trades alone in its own portfolio through the Engine, long/flat, "
        f"{cfg.size_pct:g}% of equity (risk profile `{cfg.risk_profile}`); forecasters go long at "
        f"P(up) >= {cfg.long_above} and flat below {cfg.exit_below}. Models: the 5 default models, "
        f"at most {cfg.max_train_windows} training windows and {cfg.epochs or 'default'} epochs per fit."),
        "",
        ("Directional accuracy is scored on every out-of-sample bar (next-bar direction): "
        "95% Wilson interval in brackets, p = exact two-sided binomial test against 50%. "
        "For rule strategies it is their LONG/FLAT signal read as an up/not-up forecast "
        "(buy-and-hold: the share of up bars)."),
        "",
    ]
    for ev in main:
        lines += [f"## {ev.symbol} {ev.timeframe}", "", comparison_table(ev), "", *summary_lines(ev), "",
                  fold_table(ev), ""]
    for after, before in zip(main, gross or [], strict=False):
        title = f"## What costs do: {after.symbol} {after.timeframe}, same forecasts, zero fees, slippage and spread"
        lines += [title, "", cost_table(after, before), ""]
    lines += ["## Directional accuracy by asset and timeframe", "",
              accuracy_table(main + extra), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bot.evaluation.comparison", description=__doc__)
    ap.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("docs/results.md"))
    ap.add_argument("--report", type=Path, default=None, help="also write HTML reports here")
    ap.add_argument("--symbols", nargs="*", default=list(SYMBOLS))
    args = ap.parse_args(argv)

    configure_logging("WARNING", "console")
    command = "python -m bot.evaluation.comparison " + " ".join(argv if argv is not None else sys.argv[1:])
    md = run(args.data_dir, args.out, args.report, COMPARISON_WF, args.symbols, command.strip())
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
