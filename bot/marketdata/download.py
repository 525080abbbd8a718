"""History: download candles over ccxt into the store (resumable), and import files.

``download`` pages ``fetch_ohlcv`` forward from ``max(since, last stored + 1 bar)``,
upserting each page (the store ignores rows it already has), so an interrupted run
resumes where it stopped and re-running never duplicates. Only closed bars are stored.
ccxt's own rate limiter paces requests; rate-limit and network errors back off
exponentially and retry, each retry announced (``on_retry``) before its wait.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any, Protocol

import ccxt.async_support as ccxt_async
import structlog

from bot.core.events import Candle, timeframe_ms
from bot.core.backoff import Backoff
from bot.marketdata.importer import read_candle_file
from bot.marketdata.quality import QualityPolicy, QualityReport, clean

log = structlog.get_logger(__name__)


class CandleStore(Protocol):
    async def upsert_candles(self, candles: list[Candle]) -> int: ...

    async def last_candle_ts(self, exchange: str, symbol: str, timeframe: str) -> int | None: ...


class Progress(Protocol):
    def update(self, n: int) -> Any: ...

    def close(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class RetryNotice:
    """A failed request about to be retried after ``delay_s``."""

    call: str  # "fetch_time" | "fetch_ohlcv"
    attempt: int  # 1 for the first retry of this request
    max_retries: int
    delay_s: float
    error: BaseException


@dataclass(frozen=True, slots=True)
class DownloadResult:
    fetched: int
    inserted: int
    pages: int
    first_ts: int | None
    last_ts: int | None
    retries: int


async def download(
    exchange: Any, store: CandleStore, *, exchange_name: str, symbol: str, timeframe: str,
    since_ms: int, until_ms: int | None = None, page_limit: int = 1000,
    progress: Progress | None = None, max_retries: int = 10, seed: int | None = None,
    max_pages: int | None = None, on_retry: Callable[[RetryNotice], Any] | None = None,
) -> DownloadResult:
    """Fetch closed ``timeframe`` bars of ``symbol`` in ``[since_ms, until_ms)`` into ``store``.

    Each request is retried up to ``max_retries`` times on network and rate-limit errors;
    ``on_retry`` hears of every retry before its wait begins.
    """
    tf = timeframe_ms(timeframe)
    last = await store.last_candle_ts(exchange_name, symbol, timeframe)
    cursor = since_ms if last is None or last < since_ms else last + tf
    backoff = Backoff(0.5, 30.0, 2.0, 0.5, random.Random(seed))
    fetched = inserted = pages = retries = 0
    first_ts: int | None = None
    last_ts: int | None = None

    async def call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        nonlocal retries
        for attempt in range(1, max_retries + 2):
            try:
                result = await fn(*args, **kwargs)
            except (ccxt_async.NetworkError, ccxt_async.ExchangeNotAvailable) as exc:
                if attempt > max_retries:
                    raise
                retries += 1
                notice = RetryNotice(what, attempt, max_retries, backoff.next_delay(), exc)
                log.warning("download.retry", call=what, attempt=attempt, error_type=type(exc).__name__,
                            delay_s=round(notice.delay_s, 3))
                if on_retry is not None:
                    on_retry(notice)
                await asyncio.sleep(notice.delay_s)
            else:
                backoff.reset()
                return result
        raise AssertionError("unreachable")

    if last is not None and last >= since_ms:
        log.info("download.resume", symbol=symbol, timeframe=timeframe, from_ts=cursor)
    horizon = await call("fetch_time", exchange.fetch_time)
    end = horizon if until_ms is None else min(until_ms, horizon)
    while cursor < end:
        if max_pages is not None and pages >= max_pages:
            break
        rows = await call("fetch_ohlcv", exchange.fetch_ohlcv, symbol, timeframe, since=cursor,
                          limit=page_limit)
        pages += 1
        candles = [
            Candle(exchange_name, symbol, timeframe, int(r[0]), float(r[1]), float(r[2]),
                   float(r[3]), float(r[4]), float(r[5]))
            for r in rows
            if int(r[0]) >= cursor and int(r[0]) < end and int(r[0]) + tf <= horizon
        ]
        if not candles:
            break
        fetched += len(candles)
        inserted += await store.upsert_candles(candles)
        first_ts = candles[0].ts if first_ts is None else first_ts
        last_ts = candles[-1].ts
        if progress is not None:
            progress.update((candles[-1].ts + tf - cursor) // tf)
        cursor = candles[-1].ts + tf
        if len(rows) < page_limit:
            break
    if progress is not None:
        progress.close()
    return DownloadResult(fetched, inserted, pages, first_ts, last_ts, retries)


@dataclass(frozen=True, slots=True)
class ImportResult:
    report: QualityReport
    inserted: int
    source_format: str


@dataclass(frozen=True, slots=True)
class PreparedImport:
    """A file read and treated, nothing stored yet: any bad input has failed by now."""

    candles: list[Candle]
    report: QualityReport
    source_format: str


async def prepare_import(
    path: Path | str, *, exchange_name: str, symbol: str, timeframe: str,
    policy: QualityPolicy | None = None,
) -> PreparedImport:
    """Read ``path`` (either supported format) and treat its defects per ``policy``."""

    def work() -> PreparedImport:
        raw = read_candle_file(path)
        candles, report = clean(raw, exchange_name, symbol, timeframe, policy)
        return PreparedImport(candles, report, raw.source_format)

    return await asyncio.to_thread(work)


async def store_import(prepared: PreparedImport, store: CandleStore | None, batch: int = 5000
                       ) -> ImportResult:
    """Store the prepared bars (``store=None``: a dry run, the report only)."""
    inserted = 0
    if store is not None:
        for i in range(0, len(prepared.candles), batch):
            inserted += await store.upsert_candles(prepared.candles[i:i + batch])
    return ImportResult(prepared.report, inserted, prepared.source_format)


async def import_file(
    path: Path | str, store: CandleStore | None, *, exchange_name: str, symbol: str,
    timeframe: str, policy: QualityPolicy | None = None,
) -> ImportResult:
    """Read, treat and store ``path``; the file is fully checked before anything is written."""
    prepared = await prepare_import(path, exchange_name=exchange_name, symbol=symbol,
                                    timeframe=timeframe, policy=policy)
    return await store_import(prepared, store)
