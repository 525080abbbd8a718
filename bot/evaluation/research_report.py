"""The HTML report of ``neuralbot hyperopt``: the trials' Sharpe ratios against the
threshold luck alone would reach, the PBO logit distribution, and every number in
``hyperopt.json``."""

from __future__ import annotations

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

from bot.evaluation.hyperopt import result_dict
from bot.evaluation.overfitting import expected_max_sharpe
from bot.evaluation.report import json_safe, save_figure

DAYS_PER_YEAR = 365.0


def plot_trial_sharpes(r: Any, path: Path) -> str:
    """Histogram of the trials' annualised Sharpe, the winner and the deflated threshold."""
    ann = math.sqrt(DAYS_PER_YEAR)
    sharpes = np.asarray(r.trial_sharpes) * ann
    st = r.inner_stats
    threshold = expected_max_sharpe(st.n_trials, st.trials_sharpe_variance) * ann
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.hist(sharpes, bins=max(5, min(40, len(sharpes) // 2)), color="#7a9cc6")
    ax.axvline(st.sharpe * ann, color="#2a7", lw=2, label=f"winner {st.sharpe * ann:.2f}")
    ax.axvline(threshold, color="#c33", ls="--", lw=2, label=f"expected best of {st.n_trials} by luck "
               f"{threshold:.2f}")
    ax.set_xlabel("inner Sharpe (annualised, daily returns)")
    ax.set_ylabel("trials")
    ax.legend(fontsize=8)
    ax.set_title(f"{r.symbol} {r.timeframe}: deflated Sharpe {st.dsr:.3f}")
    return save_figure(fig, path)


def plot_pbo(r: Any, path: Path) -> str | None:
    if r.pbo is None:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.hist(r.pbo.logits, bins=30, color="#c9a36b")
    ax.axvline(0.0, color="#c33", ls="--", lw=2)
    ax.set_xlabel("logit of the in-sample winner's out-of-sample rank (left of 0: below the median)")
    ax.set_ylabel("CSCV splits")
    ax.set_title(f"PBO {r.pbo.pbo:.2f} over {r.pbo.n_splits} splits")
    return save_figure(fig, path)


def write_hyperopt_report(results: Sequence[Any], out_dir: Path | str) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = ["<!doctype html><meta charset='utf-8'><title>Hyperopt</title>",
             "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}pre{background:#f4f4f4;"
             "padding:1em}td,th{padding:.2em .8em;text-align:right}</style><h1>Hyperopt</h1>"]
    payload = {}
    for r in results:
        slug = f"{r.symbol.replace('/', '_')}-{r.timeframe}"
        d = result_dict(r)
        payload[f"{r.symbol} {r.timeframe}"] = d
        parts.append(f"<h2>{html.escape(r.symbol)} {html.escape(r.timeframe)}</h2>")
        if r.flagged:
            parts.append("<p><b>Flagged</b>: deflated Sharpe below 0.95 or PBO above 0.2.</p>")
        rows = [("configurations searched", r.n_trials), ("deflated Sharpe (inner winner)", f"{r.inner_stats.dsr:.3f}"),
                ("PBO", "-" if r.pbo is None else f"{r.pbo.pbo:.2f}"),
                ("outer Sharpe", f"{r.outer.get('sharpe', 0):.2f}"),
                ("outer annual return", f"{r.outer.get('annual_return', 0):+.1%}"),
                ("outer max drawdown", f"{r.outer.get('max_drawdown', 0):.1%}"),
                ("outer PSR", f"{r.outer_stats.psr:.3f}")]
        parts.append("<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
                     + "</table>")
        parts.append(f"<pre>{html.escape(d['best_toml'])}</pre>")
        parts.append(f"<img src='{plot_trial_sharpes(r, out / f'trials-{slug}.png')}'>")
        pbo = plot_pbo(r, out / f"pbo-{slug}.png")
        if pbo:
            parts.append(f"<img src='{pbo}'>")
    (out / "hyperopt.json").write_text(json.dumps(json_safe(payload), sort_keys=True, indent=1))
    path = out / "index.html"
    path.write_text("\n".join(parts))
    return path
