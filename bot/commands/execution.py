"""``neuralbot halt [--flatten] --config FILE``: stop new entries now, optionally get flat.

Persists HALTED for the configured portfolio (a daemon restarts halted and stays so
until an operator resumes it), cancels our open entry (buy) orders at the exchange
and, with ``--flatten``, reconciles and closes every open position with reducing
market orders. Exit codes: 0 done, 1 the exchange could not be reached, 2 bad config.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any


def add_parsers(subparsers: Any) -> None:
    p = subparsers.add_parser("halt", help="halt trading: cancel open entries, optionally flatten")
    p.add_argument("--config", metavar="FILE", help="TOML configuration (default: $NEURALBOT_CONFIG)")
    p.add_argument("--flatten", action="store_true", help="also close every open position")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from bot.cli import EXIT_FAILURE, EXIT_OK, load_config_or_exit
    from bot.logging_setup import configure_logging

    settings = load_config_or_exit(args)
    configure_logging(settings.logging.level, settings.logging.format, run_id="halt", mode=settings.mode)
    try:
        summary = asyncio.run(halt(settings, args.flatten))
    except Exception as exc:  # one attempt, reported; the operator retries
        print(f"halt failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(", ".join(f"{k}={v}" for k, v in summary.items()))
    return EXIT_OK


async def halt(settings: Any, flatten: bool) -> dict[str, Any]:
    import structlog  # deferred with the rest: building the CLI parser imports no third-party package

    from bot.app import engine_settings, risk_limits
    from bot.clock import LiveClock
    from bot.execution.exchange import ExchangeExecutor
    from bot.execution.orders import OrderClosed
    from bot.execution.wiring import build_exchange_engine, make_ccxt_client
    from bot.store import Store
    from risk.gate import TradingState

    clock = LiveClock()
    symbols = list(settings.backtest.symbols)
    store = await Store.open(settings.store.path, portfolio=settings.store.portfolio)
    summary: dict[str, Any] = {"state": "halted", "canceled": 0, "flattened": 0}
    try:
        await store.set_trading_state(TradingState.HALTED.value, "operator: neuralbot halt", clock.now_ms())
        if settings.mode == "paper":
            summary["note"] = "paper mode: no exchange orders; the daemon resumes halted"
            return summary
        client = make_ccxt_client(settings)
        try:
            executor = ExchangeExecutor(client, store, clock)
            await executor.start(symbols)
            _, facts = await executor.cancel_open(symbols, entries_only=True)
            summary["canceled"] = sum(1 for f in facts if isinstance(f, OrderClosed))
            if flatten:
                built = await build_exchange_engine(
                    client=client, store=store, clock=clock, strategies=[], symbols=symbols,
                    limits=risk_limits(settings), settings=engine_settings(settings),
                    stake=settings.exchange.stake)
                before = len(built.engine.portfolio.open_positions())
                await built.engine.flatten("halt")
                summary["flattened"] = before - len(built.engine.portfolio.open_positions())
        finally:
            await client.close()
    finally:
        await store.close()
    structlog.get_logger(__name__).warning("halted", **summary)
    return summary
