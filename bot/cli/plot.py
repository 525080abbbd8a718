"""``neuralbot plot --config FILE --symbol S [--from] [--to]``: one interactive, self-contained HTML
chart of what the store holds for a symbol: candles with the strategy's entries, exits and stops,
the signals' probability and strength underneath, and equity. Offline: the charting code
(``bot/api/static/charts.js``, the dashboard's) is inlined; wheel to zoom, drag to pan."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any

from bot.cli.common import (
    EXIT_FAILURE,
    EXIT_OK,
    add_config_arg,
    load_config_or_exit,
    parse_date,
)

CHARTS_JS = Path(__file__).resolve().parent.parent / "api" / "static" / "charts.js"
MAX_ROWS = 1_000_000


def add_parsers(subparsers: Any) -> None:
    p = subparsers.add_parser("plot", help="interactive HTML chart: candles, entries/exits, signals, equity")
    add_config_arg(p)
    p.add_argument("--symbol", required=True, help="e.g. BTC/USDT")
    p.add_argument("--timeframe", help="default: the timeframe the symbol is traded on")
    p.add_argument("--from", dest="start", type=parse_date, help="first day (YYYY-MM-DD, inclusive)")
    p.add_argument("--to", dest="end", type=parse_date, help="last day (YYYY-MM-DD, exclusive)")
    p.add_argument("--portfolio", help="the store's portfolio (default: store.portfolio; a backtest prints its own)")
    p.add_argument("--out", metavar="FILE", help="default: var/plots/<SYMBOL>_<tf>.html")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    import asyncio  # deferred: the CLI parser starts without asyncio

    settings = load_config_or_exit(args)
    tf = args.timeframe or traded_timeframe(settings, args.symbol)
    out = Path(args.out or f"var/plots/{args.symbol.replace('/', '_')}_{tf}.html")
    try:
        data = asyncio.run(gather(settings, args.symbol, tf, args.start, args.end,
                                  args.portfolio or settings.store.portfolio))
    except (FileNotFoundError, LookupError) as exc:
        print(f"plot: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(render(data))
    tmp.replace(out)
    print(f"{out}  ({len(data['candles'])} candles, {len(data['markers'])} fills, {len(data['signals'])} signals,"
          f" {len(data['equity'])} equity points)")
    return EXIT_OK


def traded_timeframe(settings: Any, symbol: str) -> str:
    for s in settings.strategies:
        if s.enabled and symbol in (s.symbols or settings.backtest.symbols):
            return str(s.timeframe or settings.backtest.timeframe)
    return str(settings.backtest.timeframe)


async def gather(settings: Any, symbol: str, tf: str, start: date | None, end: date | None,
                 portfolio: str) -> dict[str, Any]:
    # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
    from bot.config.settings import date_to_ms
    from bot.core.events import PROTECTIVE_LEGS
    from bot.marketdata.candle_csv import candle_file, load_candles_csv
    from bot.store.read import StoreReader

    path = Path(settings.store.path)
    if not path.exists():
        raise FileNotFoundError(f"no store at {path}: run a backtest or the daemon first")
    since, until = date_to_ms(start), date_to_ms(end)
    exch = settings.exchange.name
    reader = await StoreReader.open(path, portfolio)
    try:
        candles = await reader.candles(exch, symbol, tf, since, until, limit=MAX_ROWS)
        _, fills = await reader.trades(symbol, since, until, limit=MAX_ROWS)
        signals = await reader.signals(symbol, None, since, until, limit=MAX_ROWS)
        equity = await reader.equity(since, until, max_points=20_000)
    finally:
        await reader.close()
    if not candles:  # a backtest reads its candles from the data files and does not store them
        candles = load_candles_csv(candle_file(settings.data.dir, exch, symbol, tf), exch, symbol, tf, since, until)
    if not candles and not fills:
        raise LookupError(f"nothing stored for {symbol} {tf} in portfolio {portfolio!r} in that period")
    return {
        "title": f"{symbol} {tf} · portfolio {portfolio}",
        "candles": [{"ts": c.ts, "open": c.open, "high": c.high, "low": c.low, "close": c.close} for c in candles],
        "markers": [{"ts": f["ts"], "price": f["price"], "side": f["side"], "amount": f["amount"],
                     "kind": "entry" if f["side"] == "buy" else ("stop" if f["leg"] in PROTECTIVE_LEGS else "exit")}
                    for f in reversed(fills)],
        "signals": [{"ts": s["ts"], "probability": s["probability"], "strength": s["strength"],
                     "strategy": s["strategy"]} for s in reversed(signals)],
        "equity": [{"ts": p["ts"], "equity": p["equity"], "drawdown_pct": p["drawdown_pct"]} for p in equity],
    }


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ margin: 0; background: #0f1116; color: #d6d9de; font: 13px system-ui, sans-serif; }}
header {{ padding: 8px 14px; }} h1 {{ font-size: 15px; margin: 0; }} .muted {{ color: #8a909a; }}
main {{ padding: 0 14px 14px; display: grid; gap: 8px; }}
canvas {{ width: 100%; display: block; background: #161a22; border: 1px solid #2a2e39; border-radius: 6px; }}
</style></head>
<body><header><h1>{title}</h1><span class="muted">wheel: zoom · drag: pan · double-click: reset ·
hover: values. Entries ▲, exits ▼ (stops red).</span></header>
<main><canvas id="price"></canvas><canvas id="prob"></canvas><canvas id="strength"></canvas><canvas id="equity"></canvas></main>
<script>{charts}</script>
<script>
const DATA = {data};
const {{ Chart, Group, COLORS }} = window.NBCharts;
const g = new Group();
const price = new Chart(document.getElementById("price"), {{ title: "Price, entries and exits", height: 380 }});
price.candles = DATA.candles; price.markers = DATA.markers;
const prob = new Chart(document.getElementById("prob"), {{ title: "Signal probability P(up)", height: 140 }});
prob.series = [{{ name: "P(up)", color: COLORS.line, points: DATA.signals.map((s) => ({{ ts: s.ts, v: s.probability }})) }}];
prob.bands = [{{ v: 0.5, color: COLORS.cross }}];
const strength = new Chart(document.getElementById("strength"), {{ title: "Signal strength (0-100)", height: 120, yMin: 0, yMax: 100 }});
strength.series = [{{ name: "strength", color: COLORS.exit, points: DATA.signals.map((s) => ({{ ts: s.ts, v: s.strength }})) }}];
const equity = new Chart(document.getElementById("equity"), {{ title: "Equity", height: 180 }});
equity.series = [{{ name: "equity", color: COLORS.up, fill: "rgba(38,166,154,0.12)", points: DATA.equity.map((p) => ({{ ts: p.ts, v: p.equity }})) }}];
for (const c of [price, prob, strength, equity]) g.add(c);
g.draw();
</script></body></html>
"""


def render(data: dict[str, Any]) -> str:
    """The page, with the data inlined as JSON (``</`` escaped so it cannot close the script)."""
    from html import escape  # deferred: every command builds the parser that imports this module

    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return PAGE.format(title=escape(data["title"]), charts=CHARTS_JS.read_text(), data=blob)
