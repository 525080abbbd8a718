"""HTML report with PNG plots (matplotlib, Agg backend: no display needed).

One section per (symbol, timeframe): metrics table, equity curves of every
strategy against the baselines, drawdowns, a strategies x months heatmap of
monthly returns, the reliability diagram and per-fold accuracy of the
forecasters (walk-forward runs), the histogram of their Sharpe ratios over the
paths (CPCV runs), and the trade list (``trades-<strategy>.csv``, the last trades
inline). ``metrics.json`` holds every number shown.
"""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from bot.evaluation.forecast import reliability_bins
from bot.evaluation.performance import drawdown_series, monthly_returns, round_trips
from bot.evaluation.runner import AssetEvaluation
from bot.evaluation.tables import comparison_table, cpcv_table, day, display, regime_table

INLINE_TRADES = 30


def _dates(ts: np.ndarray) -> np.ndarray:
    return np.asarray(ts, dtype="datetime64[ms]")


def save_figure(fig: Any, path: Path) -> str:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path.name


def plot_equity(ev: AssetEvaluation, path: Path) -> str:
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for name, rec in ev.records.items():
        if len(rec.ts):
            ax.plot(_dates(rec.ts), rec.equity / rec.initial_equity, lw=1.0, label=display(name))
    ax.set_yscale("log")
    ax.set_ylabel("equity (x initial, log)")
    ax.set_title(f"{ev.symbol} {ev.timeframe}: equity after costs")
    ax.legend(fontsize=7, ncol=3)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_drawdowns(ev: AssetEvaluation, path: Path) -> str:
    fig, ax = plt.subplots(figsize=(11, 3.5))
    for name, rec in ev.records.items():
        if len(rec.ts):
            ax.plot(_dates(rec.ts), 100 * drawdown_series(rec.equity), lw=0.8, label=display(name))
    ax.set_ylabel("drawdown (%)")
    ax.set_title("Drawdown from the running peak")
    ax.legend(fontsize=7, ncol=3)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_monthly_heatmap(ev: AssetEvaluation, path: Path) -> str:
    per = {n: monthly_returns(r.ts, np.concatenate([[r.initial_equity], r.equity])[1:])
           for n, r in ev.records.items() if len(r.ts)}
    months = sorted({m for d in per.values() for m in d})
    names = list(per)
    grid = np.full((len(names), len(months)), np.nan)
    for i, n in enumerate(names):
        for j, m in enumerate(months):
            grid[i, j] = 100 * per[n].get(m, np.nan)
    fig, ax = plt.subplots(figsize=(max(6, 0.32 * len(months) + 2), 0.45 * len(names) + 1.6))
    lim = float(np.nanpercentile(np.abs(grid), 95)) if np.isfinite(grid).any() else 1.0
    im = ax.imshow(grid, aspect="auto", cmap="RdYlGn", vmin=-lim, vmax=lim)
    ax.set_yticks(range(len(names)), [display(n) for n in names], fontsize=7)
    ax.set_xticks(range(len(months)), [f"{y}-{m:02d}" for y, m in months], rotation=90, fontsize=6)
    fig.colorbar(im, ax=ax, label="monthly return (%)")
    ax.set_title("Monthly returns")
    return save_figure(fig, path)


def plot_reliability(ev: AssetEvaluation, path: Path) -> str | None:
    fc = ev.walkforward.forecasts
    if not fc:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
    for name, f in fc.items():
        b = reliability_bins(f.y, f.p, 10)
        used = b.count > 0
        ax.plot(b.mean_p[used], b.freq[used], "o-", ms=3, lw=1, label=display(name))
    ax.set_xlabel("forecast P(up)")
    ax.set_ylabel("observed frequency of up")
    ax.set_title("Reliability (out of sample)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_fold_accuracy(ev: AssetEvaluation, path: Path) -> str | None:
    per = ev.per_fold_accuracy()
    if not per or not ev.walkforward.folds:
        return None
    fig, ax = plt.subplots(figsize=(9, 3.5))
    x = np.arange(len(ev.walkforward.folds))
    for name, accs in per.items():
        ax.plot(x, 100 * np.asarray(accs), "o-", ms=3, label=display(name))
    ax.axhline(50, color="k", lw=0.8, ls="--")
    ax.set_xticks(x, [day(f["test_from"]) for f in ev.walkforward.folds], rotation=30, fontsize=7)
    ax.set_ylabel("directional accuracy (%)")
    ax.set_title("Accuracy per walk-forward fold (test period start)")
    ax.legend(fontsize=7, ncol=3)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def plot_cpcv_sharpes(ev: AssetEvaluation, path: Path) -> str | None:
    """Histogram of each forecaster's Sharpe ratio over the CPCV paths (none without paths)."""
    per = {n: np.asarray(s["cpcv"]["sharpe"], dtype=np.float64) for n, s in ev.scores.items() if s.get("cpcv")}
    per = {n: v[np.isfinite(v)] for n, v in per.items()}
    if not any(len(v) for v in per.values()):
        return None
    fig, ax = plt.subplots(figsize=(9, 3.5))
    every = np.concatenate(list(per.values()))
    bins = np.linspace(every.min() - 0.05, every.max() + 0.05, max(6, min(30, len(every) // 2)))
    for name, v in per.items():
        ax.hist(v, bins=bins, histtype="step", lw=1.5, label=f"{display(name)} (mean {np.mean(v):.2f})")
    ax.axvline(0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("annualised Sharpe ratio after costs, one per path")
    ax.set_ylabel("paths")
    ax.set_title("Combinatorial purged CV: Sharpe ratio over the paths")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return save_figure(fig, path)


def write_trades(ev: AssetEvaluation, out: Path, slug: str) -> dict[str, tuple[str, list[list[str]]]]:
    """``trades-<slug>-<strategy>.csv`` per strategy; returns (file name, last rows) per strategy."""
    result = {}
    for name, rec in ev.records.items():
        trips = round_trips(rec.fills)
        fname = f"trades-{slug}-{name}.csv"
        # why: the reason of the signal whose bar closed as the fill's bar opened (stops have none)
        why = {s.ts: s.reason for s in rec.signals}
        rows = [[day(t.entry_ts), day(t.exit_ts), f"{t.amount:.6f}", f"{t.entry_price:.2f}",
                 f"{t.exit_price:.2f}", f"{t.pnl:.2f}", f"{t.return_pct:.2f}", why.get(t.entry_ts, ""),
                 why.get(t.exit_ts, "")] for t in trips]
        with (out / fname).open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["entry", "exit", "amount", "entry_price", "exit_price", "pnl", "return_pct",
                        "entry_why", "exit_why"])
            w.writerows(rows)
        result[name] = (fname, rows[-INLINE_TRADES:])
    return result


def _html_table(rows: list[list[str]]) -> str:
    head, *body = rows
    return ("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
            + "</table>")


def _md_to_html(md: str) -> str:
    """Render the pipe tables of :mod:`bot.evaluation.tables` (and plain lines) as HTML."""
    out: list[str] = []
    rows: list[list[str]] = []
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set(":-") for c in cells):
                rows.append(cells)
            continue
        if rows:
            out.append(_html_table(rows))
            rows = []
        if line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    if rows:
        out.append(_html_table(rows))
    return "\n".join(out)


STYLE = """body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;
font-size:12px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}
th{background:#f0f0f0}td:first-child{text-align:left}img{max-width:100%;display:block;margin:1em 0}"""


def write_report(evals: Sequence[AssetEvaluation], out_dir: Path | str, title: str = "Evaluation",
                 notes: str = "") -> Path:
    """Write ``index.html``, PNG plots, trade CSVs and ``metrics.json`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = [(f"<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
              f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>")]
    if notes:
        parts.append(f"<p>{html.escape(notes)}</p>")
    metrics: dict[str, Any] = {}
    for ev in evals:
        slug = f"{ev.symbol.replace('/', '_')}-{ev.timeframe}"
        metrics[f"{ev.symbol} {ev.timeframe}"] = {"strategies": ev.scores, "folds": ev.walkforward.folds}
        parts.append(f"<h2>{html.escape(ev.symbol)} {html.escape(ev.timeframe)}</h2>")
        if ev.scores:
            parts.append(_md_to_html(comparison_table(ev)))
            parts.append(_md_to_html(regime_table(ev)))
            parts.append(_md_to_html(cpcv_table(ev)))
        plots = [plot_equity(ev, out / f"equity-{slug}.png"), plot_drawdowns(ev, out / f"drawdown-{slug}.png"),
                 plot_monthly_heatmap(ev, out / f"monthly-{slug}.png"),
                 plot_reliability(ev, out / f"reliability-{slug}.png"),
                 plot_fold_accuracy(ev, out / f"folds-{slug}.png"),
                 plot_cpcv_sharpes(ev, out / f"cpcv-{slug}.png")]
        parts += [f"<img src='{p}' alt='{p}'>" for p in plots if p]
        parts.append("<h3>Trades</h3>")
        for name, (fname, rows) in write_trades(ev, out, slug).items():
            parts.append(f"<h4>{html.escape(display(name))}: <a href='{fname}'>{fname}</a>"
                         f" (last {len(rows)} shown)</h4>")
            if rows:
                parts.append("<table><tr><th>entry</th><th>exit</th><th>amount</th><th>entry price</th>"
                             "<th>exit price</th><th>pnl</th><th>return %</th><th>why entered</th>"
                             "<th>why exited</th></tr>"
                             + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                                       for r in rows)
                             + "</table>")
    parts.append("</body></html>")
    (out / "index.html").write_text("\n".join(parts))
    (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2, sort_keys=True))
    return out / "index.html"


def json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
