"""A small sandbox trading daemon: exchange-mode Engine + REST-polled candles and prices.

    python -m bot.app.sandbox_runner --db FILE --http URL [--symbol BTC/USDT]
    python -m bot.app.sandbox_runner --fork-server      (tests: fork pre-imported runners)

It exists so the kill -9 soak test has a real daemon process trading against the
loopback exchange; its Engine comes from the same :class:`bot.kernel.kernel.Kernel` (mode
``sandbox``) as ``neuralbot run``'s, from settings its arguments make. Its strategy alternates long / flat on
every closed bar, which makes it trade as often as possible. ``--reconcile-only``
reconciles, prints a JSON report and exits.

The fork server reads one JSON argument list per line on stdin, forks a child that
runs ``main`` (stdout/stderr to ``--log`` of that list) and prints the child's pid.
Children are separate processes: a test may ``kill -9`` them at any instant.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import ccxt.async_support as ccxt_async  # noqa: F401  (imported before forking)
import structlog

from bot.core.clock import LiveClock
from bot.config.settings import Settings
from bot.core.events import Candle, Direction, MarketEvent, Side, Signal, Trade, timeframe_ms
from bot.execution.retry import RetryPolicy
from bot.kernel.kernel import Kernel
from bot.config.logging_setup import configure_logging
from bot.store.store import Store
from strategies.base import BarContext, Strategy

log = structlog.get_logger(__name__)


class Alternator(Strategy):
    """Long on bars with an even index, flat on odd ones: a trade on every bar."""

    def evaluate(self, ctx: BarContext) -> Signal | None:
        even = (ctx.candle.ts // timeframe_ms(ctx.candle.timeframe)) % 2 == 0
        direction = Direction.LONG if even else Direction.FLAT
        return self.signal(ctx, direction, 90.0, size_pct=5.0 if even else 0.0)


async def poll_feed(client: Any, symbol: str, timeframe: str, every_s: float) -> AsyncIterator[MarketEvent]:
    """Closed candles (once each) and the open bar's last price as a trade, by REST polling."""
    last_ts: int | None = None
    while True:
        rows = await client.fetch_ohlcv(symbol, timeframe, None, 3)
        closed, live = rows[:-1], rows[-1] if rows else None
        for ts, o, h, lo, c, v in closed:
            if last_ts is None or ts > last_ts:
                last_ts = ts
                yield Candle("binance", symbol, timeframe, int(ts), o, h, lo, c, v)
        if live is not None:
            yield Trade("binance", symbol, int(live[0]), float(live[4]), 0.0, Side.BUY)
        await asyncio.sleep(every_s)


def runner_settings(args: argparse.Namespace) -> Settings:
    """A sandbox configuration from the arguments: the loopback exchange at ``--http``, a stop
    of ``--stop-pct`` (``--trail-pct`` trailing), no take-profit, no order-rate or loss breakers."""
    return Settings(
        mode="sandbox", api_key=args.key, api_secret=args.secret,
        exchange={"http_url": args.http, "timeout_ms": args.timeout_ms}, feed={"source": "exchange"},
        risk={"stop_loss_pct": args.stop_pct, "take_profit_pct": None, "trailing_stop_pct": args.trail_pct,
              "max_orders_per_minute": None, "daily_loss_limit_pct": None, "max_drawdown_pct": None},
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    log.info("runner_started", pid=os.getpid(), db=args.db, reconcile_only=args.reconcile_only)
    kernel = Kernel(runner_settings(args), "sandbox")
    client = kernel.client()
    client.options["adjustForTimeDifference"] = False
    store = await Store.open(args.db, args.portfolio)
    clock = LiveClock()
    try:
        built = await kernel.exchange_engine(
            client, store, clock, [Alternator("alt", (args.symbol,), args.timeframe)], [args.symbol],
            engine=dataclasses.replace(kernel.engine_settings(), flush_every=1),
            retry=RetryPolicy(initial_s=0.05, max_s=0.5, throttle_floor_s=0.2),
        )
        engine = built.engine
        report = {"state": engine.state.value, "mismatches": built.report.mismatches,
                  "recovered_fills": built.report.recovered_fills,
                  "unprotected": engine.unprotected(), "cash": engine.portfolio.cash,
                  "positions": {p.symbol: [p.amount, p.stop_price]
                                for p in engine.portfolio.open_positions()}}
        print(json.dumps({"reconciled": report}), flush=True)
        if args.reconcile_only:
            return report
        async for event in poll_feed(client, args.symbol, args.timeframe, args.poll_s):
            await engine.on_event(event)
    finally:
        await store.close()
        await client.close()
    return {}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sandbox_runner")
    p.add_argument("--db")
    p.add_argument("--http")
    p.add_argument("--symbol", default="BTC/USDT")
    p.add_argument("--timeframe", default="1h")
    p.add_argument("--portfolio", default="sandbox")
    p.add_argument("--key", default="sim-key")
    p.add_argument("--secret", default="sim-secret")
    p.add_argument("--timeout-ms", type=int, default=2_000)
    p.add_argument("--poll-s", type=float, default=0.05)
    p.add_argument("--stop-pct", type=float, default=0.5)
    p.add_argument("--trail-pct", type=float, default=None)
    p.add_argument("--log", default=None)
    p.add_argument("--reconcile-only", action="store_true")
    p.add_argument("--fork-server", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.fork_server:
        return fork_server()
    configure_logging("INFO", "json")
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0
    return 0


def fork_server() -> int:
    """Fork pre-imported runners on request (one JSON argv list per stdin line)."""
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped automatically
    for line in sys.stdin:
        argv = json.loads(line)
        log_path = parser().parse_args(argv).log or os.devnull
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            code = 1
            try:
                code = main(argv)
            finally:
                sys.stdout.flush()
                os._exit(code)
        print(pid, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
