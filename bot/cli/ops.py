"""``neuralbot status``: what the daemon holds and thinks, read from the SQLite store.

Positions, equity, heat, the daemon's state (from its state file, written next to
the store; ``stopped`` when its process is gone), the stored trading state with its
reason, the last operator actions and the last signals with their top feature
attributions (:func:`format_attributions`: each feature's signed share
of the explanation). Read-only (the store is opened read-only, with ``sqlite3`` alone:
:mod:`bot.store.readonly`) and without API keys: safe to run next to a daemon.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bot.cli.common import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK
from bot.ops.daemon_state import daemon_state

OPERATOR_ACTIONS_V = 7  # the schema version that added operator_actions


def add_parsers(subparsers: Any) -> None:
    p = subparsers.add_parser("status", help="positions, equity, heat, state and last signals")
    p.add_argument("--config", metavar="FILE", help="TOML configuration (default: $NEURALBOT_CONFIG)")
    p.add_argument("--signals", type=int, default=5, metavar="N", help="last N signals (default 5)")
    p.add_argument("--top", type=int, default=3, metavar="K", help="top K attributions per signal")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_status)


def top_attributions(raw: str | None, k: int) -> list[tuple[str, float]]:
    try:
        attrs = json.loads(raw or "{}")
    except ValueError:
        return []
    items = [(str(n), float(v)) for n, v in attrs.items() if isinstance(v, (int, float))]
    return sorted(items, key=lambda kv: abs(kv[1]), reverse=True)[:k]


def gather_status(settings: Any, n_signals: int = 5, top: int = 3) -> dict[str, Any]:
    from bot.config.ops import state_file_for
    from bot.store.readonly import (
        ReadOnlyStore,  # deferred: building the CLI parser opens no database
    )

    path = Path(settings.store.path)
    if not path.exists():
        raise FileNotFoundError(f"no store at {path}: has the daemon run yet?")
    with ReadOnlyStore.open(path, portfolio=settings.store.portfolio) as store:
        trading = store.load_trading_state()
        actions = store.operator_actions() if store.schema_version() >= OPERATOR_ACTIONS_V else []
        positions = [r for r in store.fetch("positions") if r["amount"] > 0]
        equity = store.fetch("equity", "ts = (SELECT MAX(ts) FROM equity WHERE portfolio = ?)",
                             (settings.store.portfolio,))
        signals = store.fetch(
            "signals", "ts >= COALESCE((SELECT ts FROM signals WHERE portfolio = ?"
            " ORDER BY ts DESC LIMIT 1 OFFSET ?), 0)", (settings.store.portfolio, max(n_signals - 1, 0)))
    last = equity[-1] if equity else None
    eq = float(last["equity"]) if last else float(settings.backtest.initial_equity)
    heat = float(last["heat"]) if last else 0.0
    return {
        "portfolio": settings.store.portfolio,
        "store": str(path),
        "daemon": daemon_state(state_file_for(settings)),
        "trading_state": {"state": trading[0], "reason": trading[1]} if trading else
        {"state": "active", "reason": ""},
        "operator_actions": [{k: a[k] for k in ("ts", "who", "action", "why")} for a in actions[-3:]],
        "equity": eq,
        "cash": float(last["cash"]) if last else eq,
        "exposure": float(last["exposure"]) if last else 0.0,
        "heat": heat,
        "heat_pct": 100.0 * heat / eq if eq > 0 else 0.0,
        "equity_ts": last["ts"] if last else None,
        "positions": [{k: r[k] for k in ("symbol", "amount", "avg_price", "stop_price", "take_profit",
                                         "realized_pnl", "ts")} for r in positions],
        "signals": [{"ts": s["ts"], "strategy": s["strategy"], "symbol": s["symbol"],
                     "direction": s["direction"], "strength": s["strength"],
                     "probability": s["probability"], "reason": s["reason"],
                     "top_attributions": (attrs := top_attributions(s["attributions_json"], top)),
                     "explanation": format_attributions(dict(attrs)) if attrs else ""}
                    for s in sorted(signals, key=lambda r: r["ts"], reverse=True)[:n_signals]],
    }


def format_attributions(attr: dict[str, float]) -> str:
    """One line per signal: ``rsi_14 +31%, ret_24 -18%`` (each feature's signed share)."""
    return ", ".join(f"{name} {share:+.0%}" for name, share in attr.items()) or "-"


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M")


def render(st: dict[str, Any]) -> str:
    d = st["daemon"]
    lines = [
        f"portfolio {st['portfolio']}  ({st['store']})",
        f"state     {d['state']}" + (f"  (pid {d['pid']}, run {d['run_id']})" if d.get("running") else ""),
        f"stored    {st['trading_state']['state']}" + (f"  ({st['trading_state']['reason']})"
                                                        if st['trading_state']['reason'] else ""),
        f"equity    {st['equity']:,.2f}  cash {st['cash']:,.2f}  exposure {st['exposure']:,.2f}"
        f"  at {_when(st['equity_ts'])} UTC",
        f"heat      {st['heat']:,.2f}  ({st['heat_pct']:.2f}% of equity)",
        "",
        f"positions ({len(st['positions'])})",
    ]
    for p in st["positions"]:
        stop = "-" if p["stop_price"] is None else f"{p['stop_price']:,.2f}"
        tp = "-" if p["take_profit"] is None else f"{p['take_profit']:,.2f}"
        lines.append(f"  {p['symbol']:<12} {p['amount']:.8f} @ {p['avg_price']:,.2f}  stop {stop}  tp {tp}")
    if st["operator_actions"]:
        lines += ["", "operator actions"]
    for a in st["operator_actions"]:
        lines.append(f"  {_when(a['ts'])} {a['action']} by {a['who']}: {a['why']}")
    lines += ["", f"last signals ({len(st['signals'])})"]
    for s in st["signals"]:
        prob = "" if s["probability"] is None else f" p={s['probability']:.3f}"
        attrs = s["explanation"] or "no attributions"
        lines.append(f"  {_when(s['ts'])} {s['strategy']} {s['symbol']} {s['direction']}"
                     f" strength {s['strength']:.1f}{prob}  [{attrs}]")
        if s["reason"]:
            lines.append(f"      why: {s['reason']}")  # the decision layer's edge, cost, band, holding time
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    from bot.config.load import load_settings
    from bot.config.settings import (
        ConfigError,  # deferred: pydantic is not needed for --help
    )
    from bot.store.schema import StoreError  # deferred: building the CLI parser opens no database

    try:
        settings = load_settings(args.config, credentials=False)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        return EXIT_CONFIG
    try:
        st = gather_status(settings, args.signals, args.top)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    print(json.dumps(st, default=str, sort_keys=True) if args.json else render(st))
    return EXIT_OK
