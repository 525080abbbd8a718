"""CLI subcommands for market data: ``download``, ``import`` and ``sim-exchange``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.core.timeframes import TIMEFRAME_MS

DEFAULT_DB = Path("var/neuralbot.sqlite")
DEFAULT_DATA = Path("../shared/data")


def parse_time_ms(value: str) -> int:
    """``2019-01-01``, ``2019-01-01T12:00`` (UTC) or epoch milliseconds."""
    if value.isdigit():
        return int(value)
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: expected YYYY-MM-DD[THH:MM] or epoch ms"
                                         ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def _count(minimum: int) -> Any:
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            n = minimum - 1
        if n < minimum:
            raise argparse.ArgumentTypeError(f"{value!r}: expected a whole number >= {minimum}")
        return n

    return parse


def _config(args: argparse.Namespace) -> Any | None:
    if not getattr(args, "config", None):
        return None
    # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
    from bot.config.load import load_settings
    from bot.config.settings import ConfigError

    try:
        return load_settings(args.config)
    except ConfigError as exc:
        print(exc.render(), file=sys.stderr)
        raise SystemExit(2) from None


def _db_path(args: argparse.Namespace, cfg: Any | None) -> Path:
    if args.db:
        return Path(args.db)
    return Path(cfg.store.path) if cfg is not None else DEFAULT_DB


def add_parsers(subparsers: Any) -> None:
    dl = subparsers.add_parser("download", help="download candles into the store (resumable)")
    dl.add_argument("--config", metavar="FILE", help="TOML configuration (optional)")
    dl.add_argument("--exchange", default="binance")
    dl.add_argument("--symbol", required=True, help="e.g. BTC/USDT")
    dl.add_argument("--timeframe", required=True, choices=TIMEFRAME_MS, metavar="TF", help="e.g. 1h")
    dl.add_argument("--since", required=True, type=parse_time_ms, help="YYYY-MM-DD or epoch ms")
    dl.add_argument("--until", type=parse_time_ms, help="exclusive end (default: now)")
    dl.add_argument("--exchange-url", help="REST base of a Binance-compatible server, e.g. "
                    "http://127.0.0.1:8765 (the loopback exchange)")
    dl.add_argument("--db", help=f"SQLite store (default: config store.path or {DEFAULT_DB})")
    dl.add_argument("--page-limit", type=_count(1), default=1000)
    dl.add_argument("--max-retries", type=_count(0), default=10,
                    help="retries per request on network/rate-limit errors (each shown with its wait)")
    dl.add_argument("--no-progress", action="store_true")
    dl.set_defaults(func=download_handler)

    im = subparsers.add_parser("import", help="import a candle CSV and print a data-quality report")
    im.add_argument("file", type=Path)
    im.add_argument("--config", metavar="FILE", help="TOML configuration (optional)")
    im.add_argument("--exchange", default="binance")
    im.add_argument("--symbol", required=True)
    im.add_argument("--timeframe", required=True, choices=TIMEFRAME_MS, metavar="TF", help="e.g. 1h")
    im.add_argument("--db", help=f"SQLite store (default: config store.path or {DEFAULT_DB})")
    im.add_argument("--dry-run", action="store_true", help="report only, store nothing")
    for name, default in (("gaps", "flag"), ("duplicates", "drop"), ("outliers", "flag"),
                          ("zero-volume", "flag")):
        im.add_argument(f"--{name}", default=default, choices=("flag", "drop", "forward_fill"),
                        help=f"what to do with {name.replace('-', ' ')} (default {default})")
    im.add_argument("--outlier-threshold", type=float, default=0.5)
    im.add_argument("--invalid", default="drop", choices=("drop", "refuse"),
                    help="bars that cannot be candles (non-positive or absurd prices, high below low):"
                         " drop and report them (default), or refuse the file naming the first")
    im.set_defaults(func=import_handler)

    sim = subparsers.add_parser("sim-exchange", help="run the loopback Binance exchange")
    sim.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8765)
    sim.add_argument("--speed", type=float, default=1.0, help="simulated ms per real ms")
    sim.add_argument("--start", type=parse_time_ms, help="simulated start (default: first candle)")
    sim.add_argument("--end", type=parse_time_ms)
    sim.add_argument("--symbols", default="", help="comma-separated, e.g. BTC/USDT,ETH/USDT")
    sim.add_argument("--book-speed", type=float, default=1.0)
    sim.add_argument("--kline-updates", type=int, default=1)
    sim.add_argument("--book", choices=("recentred", "recorded", "synthetic"), default="recentred",
                     help="recentred: the recorded books' shape around the replayed candle price "
                          "(one price everywhere); recorded: the raw 2024 recordings verbatim; "
                          "synthetic: a ladder around the candle price")
    sim.add_argument("--no-rate-limits", action="store_true",
                     help="do not enforce Binance's request-weight and order-count limits")
    sim.add_argument("--api-key", default="sim-key")
    sim.add_argument("--api-secret", default="sim-secret")
    sim.add_argument("--drop-every-n", type=int, help="fault: close ws after N messages")
    sim.add_argument("--drop-every-s", type=float, help="fault: close ws every N seconds")
    sim.add_argument("--delay-ms", type=float, default=0.0, help="fault: delay ws messages")
    sim.add_argument("--malformed-every-n", type=int, help="fault: broken JSON every N messages")
    sim.add_argument("--skip-depth-every-n", type=int, help="fault: drop every N-th depth diff")
    sim.add_argument("--http-429-every-n", type=int)
    sim.add_argument("--http-5xx-every-n", type=int)
    sim.add_argument("--order-timeout-every-n", type=int)
    sim.set_defaults(func=sim_handler)


# -- download ----------------------------------------------------------------------------


def download_handler(args: argparse.Namespace) -> int:
    import asyncio
    try:
        return asyncio.run(_download(args))
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130


async def _download(args: argparse.Namespace) -> int:
    # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
    import ccxt.async_support as ccxt_async
    from tqdm import tqdm

    from bot.core.events import timeframe_ms
    from bot.marketdata.download import download
    from bot.sim.ccxt_config import configure_ccxt
    from bot.store.store import Store

    cfg = _config(args)
    url = args.exchange_url or (cfg.exchange.http_url if cfg is not None else None)
    klass = getattr(ccxt_async, args.exchange, None)
    if klass is None:
        print(f"unknown exchange {args.exchange!r}", file=sys.stderr)
        return 2
    exchange = klass({"enableRateLimit": True})
    if url:
        configure_ccxt(exchange, url)
    store = await Store.open(_db_path(args, cfg))
    try:
        tf = timeframe_ms(args.timeframe)
        until = args.until
        total = None if until is None else max(0, (until - args.since) // tf)
        bar = None if args.no_progress else tqdm(total=total, unit="bar",
                                                 desc=f"{args.symbol} {args.timeframe}")
        result = await download(exchange, store, exchange_name=args.exchange, symbol=args.symbol,
                                timeframe=args.timeframe, since_ms=args.since, until_ms=until,
                                page_limit=args.page_limit, progress=bar, max_retries=args.max_retries,
                                on_retry=_print_retry)
    except (ccxt_async.BaseError, OSError) as exc:
        print(f"download failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        await store.close()
        await exchange.close()
    print(f"{result.fetched} bars fetched in {result.pages} pages, {result.inserted} new, "
          f"{result.retries} retries")
    return 0


def _print_retry(n: Any) -> None:
    print(f"download: {n.call} failed ({type(n.error).__name__}: {str(n.error)[:120]}); "
          f"retry {n.attempt}/{n.max_retries} in {n.delay_s:.1f} s", file=sys.stderr, flush=True)


# -- import ---------------------------------------------------------------------------------


def import_handler(args: argparse.Namespace) -> int:
    import asyncio
    return asyncio.run(_import(args))


async def _import(args: argparse.Namespace) -> int:
    # deferred: building the parser imports no third-party package (tests/cli/test_cli_imports.py)
    from bot.marketdata.download import prepare_import, store_import
    from bot.marketdata.quality import QualityPolicy
    from bot.store.store import Store

    cfg = _config(args)
    policy = QualityPolicy(gaps=args.gaps, duplicates=args.duplicates, outliers=args.outliers,
                           zero_volume=args.zero_volume, outlier_threshold=args.outlier_threshold,
                           invalid=args.invalid)
    try:  # the whole file is read and checked before the store is even opened
        prepared = await prepare_import(args.file, exchange_name=args.exchange, symbol=args.symbol,
                                        timeframe=args.timeframe, policy=policy)
    except FileNotFoundError as exc:
        print(f"import failed: {exc}", file=sys.stderr)
        return 2
    store = None if args.dry_run else await Store.open(_db_path(args, cfg))
    try:
        result = await store_import(prepared, store)
    finally:
        if store is not None:
            await store.close()
    print(f"{args.file} ({result.source_format} format)")
    print(result.report.render(args.timeframe))
    print(f"stored: {result.inserted} new rows" if store is not None else "dry run: nothing stored")
    return 0


# -- sim-exchange ----------------------------------------------------------------------------------


def sim_handler(args: argparse.Namespace) -> int:
    import asyncio
    from bot.sim import FaultSettings, SimExchange, SimSettings
    from bot.sim.settings import UNLIMITED, RateLimitSettings

    faults = FaultSettings(
        drop_every_n_messages=args.drop_every_n, drop_every_s=args.drop_every_s,
        delay_ms=args.delay_ms, malformed_every_n=args.malformed_every_n,
        skip_depth_every_n=args.skip_depth_every_n, http_429_every_n=args.http_429_every_n,
        http_5xx_every_n=args.http_5xx_every_n, order_timeout_every_n=args.order_timeout_every_n)
    symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
    settings = SimSettings(
        data_dir=args.data_dir, host=args.host, port=args.port, speed=args.speed,
        start_ms=args.start, end_ms=args.end, symbols=symbols, book_speed=args.book_speed,
        kline_updates=args.kline_updates, matching_book=args.book,
        api_key=args.api_key, api_secret=args.api_secret, faults=faults,
        rate_limits=UNLIMITED if args.no_rate_limits else RateLimitSettings())

    async def serve() -> None:
        async with SimExchange(settings) as sim:
            print(f"loopback exchange: REST {sim.http_url}/api/v3  websocket {sim.ws_url}/ws  "
                  f"markets {', '.join(m.symbol for m in sim.markets.values())}", flush=True)
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0
