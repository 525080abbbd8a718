"""Markdown tables of evaluation results (the shape of the reference article's tables)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.evaluation.forecast import directional_accuracy
from bot.evaluation.regimes import REGIMES

if TYPE_CHECKING:
    from bot.evaluation.runner import AssetEvaluation

DISPLAY: dict[str, str] = {
    "lstm": "LSTM", "bilstm": "BiLSTM", "cnn_lstm": "CNN-LSTM", "transformer": "Transformer",
    "gbm": "Gradient boosting", "ensemble": "Ensemble (mean of the models)",
    "ensemble_vote": "Ensemble vote (min(4, n) of n, P>=0.55, strength>=65)", "ma_crossover": "MA crossover (20/50)",
    "rsi_macd": "RSI + MACD", "buy_and_hold": "Buy and hold",
}


def display(name: str) -> str:
    return DISPLAY.get(name, name)


def day(ms: object) -> str:
    return datetime.fromtimestamp(int(ms) / 1000, UTC).strftime("%Y-%m-%d")  # type: ignore[call-overload]


def _pct(x: Any, digits: int = 1) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.{digits}f}%"


def _num(x: Any, digits: int = 2) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _acc(s: dict[str, Any]) -> str:
    if s.get("accuracy") is None:
        return "n/a"
    lo, hi = s["accuracy_ci"]
    return f"{100 * s['accuracy']:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"


def _pval(p: Any) -> str:
    if p is None:
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    align = align or "l" + "r" * (len(header) - 1)
    sep = ["---:" if a == "r" else ":---" for a in align]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(sep) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def comparison_table(ev: AssetEvaluation) -> str:
    """Rows: strategies; columns: the article's, plus accuracy CI, p-value and trade counts."""
    header = ["Strategy", "Win rate", "Sharpe", "Sortino", "Max drawdown", "Annual return",
              "Directional accuracy [95% CI]", "p vs 50%", "Trades", "Trades/month", "Turnover/yr", "Exposure"]
    rows = []
    for name, s in ev.scores.items():
        rows.append([
            display(name), _pct(s["win_rate"]) if s["trades"] else "n/a", _num(s["sharpe"]), _num(s["sortino"]),
            _pct(s["max_drawdown"]), _pct(s["annual_return"]), _acc(s),
            _pval(s.get("accuracy_p_value")), str(s["trades"]), _num(s["trades_per_month"], 1),
            _num(s.get("turnover"), 1), _pct(s["exposure"], 0),
        ])
    first = next(iter(ev.scores.values()), None)
    span = f"{day(first['first_ts'])} to {day(first['last_ts'])}, {first['bars']} bars" if first else ""
    return f"Out of sample: {span}.\n\n" + md_table(header, rows)


def regime_table(ev: AssetEvaluation) -> str:
    """Annual return and Sharpe of each strategy within each market regime (bot.evaluation.regimes)."""

    first = next((s["regimes"] for s in ev.scores.values() if "regimes" in s), None)
    if first is None:
        return ""
    header = ["Strategy"] + [f"{r} ({_pct(first[r]['share'], 0)} of bars): return / Sharpe" for r in REGIMES]
    rows = [[display(name)] + [f"{_pct(s['regimes'][r]['annual_return'])} / {_num(s['regimes'][r]['sharpe'])}"
                               for r in REGIMES]
            for name, s in ev.scores.items() if "regimes" in s]
    return "By market regime (annualised within the regime's bars):\n\n" + md_table(header, rows)


def fold_table(ev: AssetEvaluation) -> str:
    """Directional accuracy of each forecaster in each walk-forward fold."""
    per = ev.per_fold_accuracy()
    names = list(per)
    header = ["Fold", "Train from", "Test period", "Eligible train windows"] + [display(n) for n in names]
    rows = []
    for k, f in enumerate(ev.walkforward.folds):
        period = (f"groups {', '.join(map(str, f['test_groups']))}" if "test_groups" in f  # type: ignore[call-overload]
                  else f"{day(f['test_from'])} .. {day(int(f['test_to']) - 1)}")  # type: ignore[call-overload]
        rows.append([str(k), day(f["train_from"]), period, str(f["n_train"])] + [_pct(per[n][k]) for n in names])
    return md_table(header, rows)


def cpcv_table(ev: AssetEvaluation) -> str:
    """The Sharpe ratio of each forecaster over the CPCV paths ("" when the splitter made none)."""
    rows = [[display(name), str(c["paths"]), _num(c["mean"]), _num(c["std"]), _num(c["min"]), _num(c["median"]),
             _num(c["max"]), _pct(c["share_positive"], 0)]
            for name, s in ev.scores.items() if (c := s.get("cpcv"))]
    if not rows:
        return ""
    header = ["Strategy", "Paths", "Mean Sharpe", "Std", "Min", "Median", "Max", "Paths > 0"]
    return ("Sharpe ratio over the combinatorial purged CV paths (each a full out-of-sample history):\n\n"
            + md_table(header, rows))


def accuracy_table(evs: Sequence[AssetEvaluation]) -> str:
    """Directional accuracy [95% CI] of each forecaster by asset and timeframe."""
    names: list[str] = []
    for ev in evs:
        names += [n for n in ev.walkforward.forecasts if n not in names]
    header = ["Asset", "Timeframe", "Test bars"] + [display(n) for n in names] + ["Up-bar share"]
    rows = []
    for ev in evs:
        row = [ev.symbol, ev.timeframe.upper()]
        any_f = next(iter(ev.walkforward.forecasts.values()), None)
        row.append(str(int(np.isfinite(any_f.y).sum())) if any_f is not None else "0")
        for n in names:
            f = ev.walkforward.forecasts.get(n)
            if f is None:
                row.append("n/a")
                continue
            a = directional_accuracy(f.y, f.p)
            row.append(f"{a.format()}" + (" *" if a.p_value < 0.05 else ""))
        y = any_f.y[np.isfinite(any_f.y)] if any_f is not None else np.zeros(0)
        row.append(_pct(float(np.mean(y)) if len(y) else None))
        rows.append(row)
    return md_table(header, rows) + "\n\n`*`: binomial test against 50% significant at 5% (not corrected for multiple comparisons)."


FORECASTERS = ("lstm", "bilstm", "cnn_lstm", "transformer", "gbm", "ensemble", "ensemble_vote")


def summary_lines(ev: AssetEvaluation) -> list[str]:
    """A few data-driven sentences on one asset's comparison (no adjectives chosen by hand)."""
    sc = ev.scores
    if not sc:
        return []

    def sharpe(n: str) -> float:
        v = sc[n]["sharpe"]
        return float(v) if v is not None and np.isfinite(v) else float("-inf")

    best = max(sc, key=sharpe)
    fc = [n for n in sc if n in FORECASTERS]
    out = [f"- Highest Sharpe: {display(best)} ({sharpe(best):.2f})."]
    for base in ("buy_and_hold", "ma_crossover"):
        if base in sc and fc:
            beat = [display(n) for n in fc if sharpe(n) > sharpe(base)]
            out.append(f"- Forecasters with a higher Sharpe than {display(base)} ({sharpe(base):.2f}): "
                       + (", ".join(beat) if beat else "none") + ".")
    if "buy_and_hold" in sc and fc:
        ar = sc["buy_and_hold"]["annual_return"]
        beat = [display(n) for n in fc if sc[n]["annual_return"] > ar]
        out.append(f"- Forecasters with a higher annual return than buy and hold ({100 * ar:.1f}%): "
                   + (", ".join(beat) if beat else "none") + ".")
    sig = [n for n in fc if (sc[n].get("accuracy_p_value") or 1.0) < 0.05 and (sc[n].get("accuracy") or 0) > 0.5]
    up = [f for f in ev.walkforward.forecasts.values()][:1]
    share = float(np.nanmean(up[0].y)) if up else float("nan")
    out.append(f"- Forecasters whose next-bar accuracy is above 50% at p < 0.05: {len(sig)} of {len(fc)}; "
               f"the share of up bars (what always predicting 'up' scores) is {100 * share:.1f}%.")
    return out
